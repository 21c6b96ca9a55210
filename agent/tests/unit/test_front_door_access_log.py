"""The access log's lines (frontdoor/access.py): one JSON object each, with the fields
operators filter on, and a sink that fails never takes the door down."""

from __future__ import annotations

import json

from radioagent.frontdoor.access import AccessLog, AccessRecord, access_line


def record(**changes: object) -> AccessRecord:
    fields: dict[str, object] = {
        "kind": "listener",
        "client": "192.0.2.7",
        "method": "GET",
        "mount": "/live.mp3",
        "user_agent": "VLC/3.0.18 LibVLC/3.0.18",
        "started": 1_765_000_000.25,
        "started_monotonic": 50.0,
        "status": 200,
        "bytes": 123_456,
    }
    fields.update(changes)
    return AccessRecord(**fields)  # type: ignore[arg-type]


def test_a_line_is_one_json_object_with_every_field() -> None:
    line = access_line(record(), ended_monotonic=62.5)
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2025-12-06T05:46:40.250+00:00",
        "kind": "listener",
        "client": "192.0.2.7",
        "method": "GET",
        "mount": "/live.mp3",
        "status": 200,
        "bytes": 123456,
        "seconds": 12.5,
        "user_agent": "VLC/3.0.18 LibVLC/3.0.18",
    }


def test_what_a_client_sends_cannot_break_the_line() -> None:
    agent = 'x"\n{"status": 200}\\' + "é" * 400
    parsed = json.loads(access_line(record(user_agent=agent, mount="/a\nb"), 51.0))
    assert parsed["user_agent"] == agent[:256]
    assert parsed["mount"] == "/a\nb"


def test_a_failing_sink_is_counted_not_raised() -> None:
    def full(line: str) -> None:
        raise OSError("journal gone")

    log = AccessLog(full)
    log.write(record())
    assert log.failures == 1
    lines: list[str] = []
    AccessLog(lines.append).write(record())
    assert json.loads(lines[0])["status"] == 200
    AccessLog(None).write(record())  # off: nothing to write to
