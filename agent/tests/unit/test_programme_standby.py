"""A programme's standby: started with its output off, turned on in place when its node
wins the programme, restarted for anything else. Real processes (`sh`) stand in for
Liquidsoap, and a Unix socket server speaks its server protocol."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from radioagent.programmes.control import ControlError, go_on_air
from radioagent.programmes.script import socket_path
from radioagent.transcoding.script import TranscoderJob
from radioagent.transcoding.supervisor import Transcoder, TranscoderSupervisor

ON_AIR = TranscoderJob("radio.mp3", "# script", "producer", "pw", programme=True)
STANDBY = dataclasses.replace(ON_AIR, standby=True)
STATE = '{"preferred": "", "on_air": "", "lufs": -120, "inputs": []}'
BOUND_S = 5.0


@asynccontextmanager
async def fake_liquidsoap(socket: Path, air_answer: str = "ok") -> AsyncIterator[list[str]]:
    """A server socket answering like the programme's script; yields the commands heard."""
    heard: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := (await reader.readline()).decode().strip():
            if line == "quit":
                break
            heard.append(line)
            reply = {"programme.state": STATE, "programme.air": air_answer}.get(line, "ok")
            writer.write(f"{reply}\nEND\n".encode())
        writer.close()

    server = await asyncio.start_unix_server(answer, str(socket))
    try:
        yield heard
    finally:
        server.close()
        await server.wait_closed()


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(BOUND_S):
            while not condition():
                await asyncio.sleep(0.02)  # polling a condition, bounded by the timeout
    except TimeoutError:
        raise AssertionError(f"not within {BOUND_S} s: {what}") from None


def test_a_standby_promoted_while_its_process_starts_is_still_told_to_go_on_air(
    tmp_path: Path,
) -> None:
    """The launch reads the standby job; promote() lands before it returns. The process
    runs as a standby, so it must still be told, or the programme stays silent."""
    socket = tmp_path / "programme.sock"

    async def scenario() -> list[str]:
        launching = asyncio.Event()
        release = asyncio.Event()
        launched: list[TranscoderJob] = []

        async def slow_launch(job: TranscoderJob) -> asyncio.subprocess.Process:
            launched.append(job)
            launching.set()
            await release.wait()
            return await asyncio.create_subprocess_exec("sleep", "30")

        async with fake_liquidsoap(socket) as heard:
            transcoder = Transcoder(STANDBY, slow_launch, socket)
            transcoder.start()
            try:
                await asyncio.wait_for(launching.wait(), BOUND_S)
                await transcoder.promote(ON_AIR)
                release.set()
                await wait_until(lambda: "programme.air" in heard, "told to go on air")
            finally:
                await transcoder.stop()
            assert launched == [STANDBY]
            return heard

    assert "programme.air" in asyncio.run(scenario())


def test_a_standby_that_answers_no_is_an_error(tmp_path: Path) -> None:
    async def scenario(socket: Path) -> None:
        async with fake_liquidsoap(socket, air_answer="error: no output"):
            await go_on_air(socket)

    with pytest.raises(ControlError, match="no output"):
        asyncio.run(scenario(tmp_path / "programme.sock"))


def environment_of(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def test_converge_promotes_a_standby_in_place_and_restarts_for_any_other_change(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        supervisor = TranscoderSupervisor(
            ("sh", "-c", "exec sleep 30", "liquidsoap"), None, tmp_path
        )

        def pid() -> int:
            process = supervisor._transcoders["radio.mp3"]._process
            assert process is not None
            return process.pid

        try:
            await supervisor.converge({"radio.mp3": STANDBY})
            await wait_until(lambda: supervisor._transcoders["radio.mp3"].state.running, "up")
            standby = pid()
            assert b"RADIO_PROGRAMME_STANDBY=1" in environment_of(standby)
            assert supervisor.states() == {}  # a standby's state is not the programme's
            assert supervisor.running_any()

            await supervisor.converge({"radio.mp3": ON_AIR})
            assert pid() == standby  # promoted, not restarted
            assert list(supervisor.states()) == ["radio.mp3"]

            moved = dataclasses.replace(ON_AIR, script="# another leader")
            await supervisor.converge({"radio.mp3": moved})
            await wait_until(lambda: supervisor._transcoders["radio.mp3"].state.running, "up")
            on_air = pid()
            assert on_air != standby
            assert b"RADIO_PROGRAMME_STANDBY=0" in environment_of(on_air)

            # Back to standing by (another node won it): a restart with the output off.
            await supervisor.converge({"radio.mp3": dataclasses.replace(moved, standby=True)})
            await wait_until(lambda: supervisor._transcoders["radio.mp3"].state.running, "up")
            assert pid() != on_air
            assert b"RADIO_PROGRAMME_STANDBY=1" in environment_of(pid())
        finally:
            await supervisor.stop_all()
        assert not supervisor.running_any()

    asyncio.run(scenario())


def test_a_standby_is_reported_ready_once_its_liquidsoap_answers(short_tmp: Path) -> None:
    """Other nodes hand a programme over to a ready standby: one still starting would
    keep the programme off the air for its start."""

    async def scenario() -> None:
        supervisor = TranscoderSupervisor(
            ("sh", "-c", "exec sleep 30", "liquidsoap"), None, short_tmp
        )
        socket = socket_path(short_tmp, "radio.mp3")
        socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            await supervisor.converge({"radio.mp3": STANDBY})
            await wait_until(lambda: supervisor._transcoders["radio.mp3"].state.running, "up")
            assert supervisor.standbys() == ()  # running, but its server does not answer
            async with fake_liquidsoap(socket):
                await wait_until(lambda: supervisor.standbys() == ("radio.mp3",), "ready")
                await supervisor.converge({"radio.mp3": ON_AIR})
                assert supervisor.standbys() == ()  # on air now
        finally:
            await supervisor.stop_all()

    asyncio.run(scenario())
