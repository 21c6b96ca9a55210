"""The scripts follow the node's Liquidsoap: 2.1 (Debian 12) and 2.3 (Debian 13) differ in
how a script reads its environment and in input.harbor's clock_safe."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from radioagent.liquidsoap import OLDEST_LIQUIDSOAP, LiquidsoapVersion, liquidsoap_version
from radioagent.programmes.script import programme_job
from radioagent.transcoding import supervisor
from radioagent.transcoding.script import transcoder_job
from radioagent.transcoding.supervisor import LiquidsoapVersionProbe, installed_liquidsoap_version
from tests.unit import test_programme_run as programmes
from tests.unit import test_transcoding as transcoding

TEMPLATES = str(transcoding.REPO_DIR / "templates")
LEADER = transcoding.node_status("n2", address="192.0.2.7", icecast_port=8123)


@pytest.mark.parametrize(
    ("said", "version"),
    [
        ("Liquidsoap 2.1.3\nCopyright (c) 2003-2022 Savonet team", (2, 1)),
        ("Liquidsoap 2.3.2+dev\n", (2, 3)),
        ("Liquidsoap 10.12.0", (10, 12)),
        ("", None),
        ("liquidsoap: command not found", None),
        ("Liquidsoap version unknown", None),
    ],
)
def test_the_version_is_read_from_what_liquidsoap_says(
    said: str, version: tuple[int, int] | None
) -> None:
    assert liquidsoap_version(said) == version


def transcoder_script(version: tuple[int, int]) -> str:
    return transcoder_job(
        TEMPLATES, transcoding.MOUNTS["a.opus"], LEADER, transcoding.MP3, liquidsoap_version=version
    ).script


def programme_script(version: tuple[int, int]) -> str:
    return programme_job(
        TEMPLATES,
        programmes.PROGRAMME,
        programmes.LEADER,
        programmes.RUN_DIR,
        programmes.INPUTS,
        liquidsoap_version=version,
    ).script


def test_liquidsoap_2_1_reads_the_password_with_getenv() -> None:
    assert 'password=getenv("RADIO_SOURCE_PASSWORD")' in transcoder_script((2, 1))
    assert 'password=getenv("RADIO_SOURCE_PASSWORD")' in programme_script((2, 1))
    assert "environment.get" not in transcoder_script((2, 1)) + programme_script((2, 1))


def test_liquidsoap_2_3_reads_the_password_with_environment_get() -> None:
    # There getenv("X") would take "X" as the default and wait for the variable's name.
    assert 'password=environment.get("RADIO_SOURCE_PASSWORD")' in transcoder_script((2, 3))
    script = programme_script((2, 3))
    assert 'password=environment.get("RADIO_SOURCE_PASSWORD")' in script
    assert 'environment.get("RADIO_PROGRAMME_STANDBY")' in script
    assert "getenv" not in transcoder_script((2, 3)) + script


def test_only_liquidsoap_2_1_is_given_clock_safe() -> None:
    assert "clock_safe=true" in programme_script((2, 1))
    assert "clock_safe" not in programme_script((2, 3))


def test_a_command_that_names_no_version_gets_the_oldest_scripts() -> None:
    assert asyncio.run(installed_liquidsoap_version(("true",))) == OLDEST_LIQUIDSOAP
    missing = ("/nonexistent/liquidsoap",)
    assert asyncio.run(installed_liquidsoap_version(missing)) == OLDEST_LIQUIDSOAP


def test_a_command_that_hangs_is_bounded_and_the_loop_keeps_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "VERSION_TIMEOUT_S", 0.5)
    stand_in = tmp_path / "liquidsoap"
    stand_in.write_text("#!/bin/sh\nexec sleep 30\n")
    stand_in.chmod(0o755)

    async def probe_beside_a_ticker() -> tuple[LiquidsoapVersion, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        version = await installed_liquidsoap_version((str(stand_in),))
        ticker.cancel()
        return version, ticks

    version, ticks = asyncio.run(probe_beside_a_ticker())
    assert version == OLDEST_LIQUIDSOAP
    assert ticks >= 5  # the loop ran while the command hung


def test_the_version_comes_from_the_command_it_runs(tmp_path: Path) -> None:
    stand_in = tmp_path / "liquidsoap"
    stand_in.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Liquidsoap 2.3.2+dev"\n')
    stand_in.chmod(0o755)
    assert asyncio.run(installed_liquidsoap_version((str(stand_in),))) == (2, 3)


def test_the_version_is_asked_again_only_when_the_binary_changes(tmp_path: Path) -> None:
    stand_in = tmp_path / "liquidsoap"
    asked = tmp_path / "asked"
    stand_in.write_text(f'#!/bin/sh\necho >> {asked}\necho "Liquidsoap 2.1.3"\n')
    stand_in.chmod(0o755)
    probe = LiquidsoapVersionProbe((str(stand_in),))
    assert not asked.exists()  # nothing asked until a script is written
    assert asyncio.run(probe.current()) == (2, 1)
    assert asyncio.run(probe.current()) == (2, 1)
    assert asked.read_text().count("\n") == 1
    replaced = tmp_path / "liquidsoap.new"
    replaced.write_text(f'#!/bin/sh\necho >> {asked}\necho "Liquidsoap 2.3.2+dev"\n')
    replaced.chmod(0o755)
    replaced.replace(stand_in)  # as dpkg installs a new binary: a new file
    assert asyncio.run(probe.current()) == (2, 3)
    assert asked.read_text().count("\n") == 2
