"""Mount specs: what is accepted, and what is refused with a message naming the field."""

from __future__ import annotations

import json

import pytest

from radioagent.model import (
    AudioFormat,
    MountSpec,
    cross_mount_problems,
    mount_from_json,
    node_status_from_json,
    parse_mount,
)
from radioagent.validation import ValidationError


def problems_of(fields: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        parse_mount(fields)
    return raised.value.problems


def test_minimal_mount_gets_defaults_and_round_trips_through_json() -> None:
    mount = parse_mount({"name": "live.mp3", "source_password": "hackme"})
    assert mount.path == "/live.mp3"
    assert mount.holding_path == "/_holding/live.mp3"
    assert mount.format == AudioFormat("mp3", 128, 44100, 2)
    assert mount_from_json(mount.to_json()) == mount


def test_full_mount_round_trips_through_json() -> None:
    mount = parse_mount(
        {
            "name": "hq.ogg",
            "source_password": "s3cret",
            "source_username": "studio",
            "fallback": "backup.ogg",
            "max_listeners": 50,
            "radio": "radio-one",
            "transcode": {
                "parent": "live.mp3",
                "format": {"codec": "opus", "bitrate_kbps": 64, "samplerate": 48000},
            },
        }
    )
    assert mount.transcode is not None
    assert mount.format == mount.transcode.format
    assert mount.format.codec == "opus"
    assert mount_from_json(mount.to_json()) == mount


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../etc", "not valid"),
        ("a..b", "'..' is not allowed"),
        ("a/b", "not valid"),
        ("_holding", "not valid"),
        ("", "not valid"),
        ("x" * 64, "too long"),
        ("live mp3", "not valid"),
        (7, "not a string"),
    ],
)
def test_bad_mount_names_are_refused(name: object, reason: str) -> None:
    problems = problems_of({"name": name, "source_password": "hackme"})
    assert any(problem.startswith("name:") and reason in problem for problem in problems)


def test_every_problem_is_reported_at_once_naming_its_field() -> None:
    problems = problems_of(
        {
            "name": "ok",
            "source_password": "has space",
            "format": {"codec": "wma", "samplerate": 44000, "channels": 6},
            "max_listeners": -1,
            "colour": "blue",
        }
    )
    fields = sorted(problem.split(":")[0] for problem in problems)
    assert fields == [
        "colour",
        "format.channels",
        "format.codec",
        "format.samplerate",
        "max_listeners",
        "source_password",
    ]


def test_a_bad_password_is_never_repeated_in_the_message() -> None:
    problems = problems_of({"name": "ok", "source_password": "secret<value"})
    assert problems == [
        "source_password: the value is not valid (expected 1-128 printable characters "
        "without spaces, quotes, ':', '<' or '>')"
    ]
    assert "secret<value" not in problems[0]


def test_missing_required_fields_are_named() -> None:
    assert sorted(problems_of({})) == ["name: missing", "source_password: missing"]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/x",
        "ftp://example.org/x",
        "http:///nohost",
        5,
        "http://up:abc/s",
        "http://up:99999/s",
    ],
)
def test_relay_url_must_be_plain_http_with_a_host(url: object) -> None:
    problems = problems_of({"name": "ok", "source_password": "pw", "relay_url": url})
    assert [problem.split(":")[0] for problem in problems] == ["relay_url"]


def test_transcode_needs_a_parent_other_than_itself_and_no_relay() -> None:
    problems = problems_of(
        {
            "name": "low.mp3",
            "source_password": "pw",
            "relay_url": "http://example.org/x",
            "transcode": {"parent": "low.mp3", "format": {"codec": "mp3"}},
        }
    )
    assert "transcode.parent: 'low.mp3' cannot transcode itself" in problems
    assert "relay_url: a transcoded mount cannot also relay a URL" in problems


def test_mount_json_that_is_not_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="not JSON"):
        mount_from_json(b"\xff{")


def mount(name: str, codec: str = "mp3", **fields: object) -> MountSpec:
    return parse_mount(
        {
            "name": name,
            "source_password": "pw",
            "format": {"codec": codec, "samplerate": 48000},
            **fields,
        }
    )


def test_fallback_must_exist_and_share_the_container() -> None:
    mounts = {
        "a": mount("a", fallback="b"),
        "b": mount("b", codec="vorbis"),
        "c": mount("c", fallback="missing"),
    }
    assert cross_mount_problems(mounts) == [
        "a: fallback 'b' carries application/ogg, not audio/mpeg",
        "c: fallback 'missing' is not a mount",
    ]


def test_fallback_between_ogg_codecs_is_allowed() -> None:
    mounts = {"a": mount("a", codec="opus", fallback="b"), "b": mount("b", codec="vorbis")}
    assert cross_mount_problems(mounts) == []


def test_opus_takes_only_its_own_samplerates() -> None:
    problems = problems_of(
        {
            "name": "o.opus",
            "source_password": "pw",
            "format": {"codec": "opus", "samplerate": 44100},
        }
    )
    assert problems == [
        "format.samplerate: 44100 is not one of 8000, 12000, 16000, 24000, 48000 (Opus)"
    ]


STATUS = {
    "name": "node2",
    "address": "10.0.0.2",
    "icecast_port": 8001,
    "icecast_up": True,
    "role": "leader",
    "epoch": 9,
    "listeners": {"live.mp3": 3},
    "bandwidth_kbps": 384.0,
    "bandwidth_limit_kbps": None,
    "listener_limit": 500,
    "draining": False,
    "agent_version": "0.1.0",
}


def test_node_status_from_a_newer_agent_keeps_what_it_knows() -> None:
    status = node_status_from_json(json.dumps({**STATUS, "added_later": [1, 2]}))
    assert status.name == "node2"
    assert status.listeners == {"live.mp3": 3}


def test_node_status_from_an_older_agent_gets_defaults() -> None:
    status = node_status_from_json(
        json.dumps({"name": "node3", "address": "10.0.0.3", "icecast_port": 8001})
    )
    assert (status.icecast_up, status.draining, status.listeners) == (False, False, {})


def test_node_status_with_wrong_types_is_refused_naming_each_field() -> None:
    with pytest.raises(ValidationError) as raised:
        node_status_from_json(
            json.dumps(
                {
                    **STATUS,
                    "address": 7,
                    "icecast_port": "8001",
                    "listeners": {"x": "3"},
                    "hls_mounts": "live.mp3",
                }
            )
        )
    assert sorted(problem.split(":")[1].strip() for problem in raised.value.problems) == [
        "address",
        "hls_mounts",
        "icecast_port",
        "listeners",
    ]


def test_node_status_round_trips_what_hls_on_other_nodes_needs() -> None:
    status = node_status_from_json(
        json.dumps(
            {
                **STATUS,
                "hls_mounts": ["live.mp3"],
                "hls_numbers": {"live.mp3": [425000001, 2]},
                "leading_since": 1_700_000_000.25,
                "air_changed": {"live.mp3": 1_700_000_100},
            }
        )
    )
    assert status.hls_mounts == ("live.mp3",)
    assert status.hls_numbers == {"live.mp3": (425000001, 2)}
    assert status.leading_since == 1_700_000_000.25
    assert node_status_from_json(status.to_json()) == status


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hls_numbers", {"live.mp3": [1]}),
        ("hls_numbers", {"live.mp3": [1, -2]}),
        ("hls_numbers", {"live.mp3": "1,2"}),
        ("leading_since", "yesterday"),
        ("air_changed", {"live.mp3": None}),
    ],
)
def test_node_status_with_bad_hls_facts_is_refused_naming_the_field(
    key: str, value: object
) -> None:
    with pytest.raises(ValidationError) as raised:
        node_status_from_json(json.dumps({**STATUS, key: value}))
    assert [problem.split(":")[1].strip() for problem in raised.value.problems] == [key]
