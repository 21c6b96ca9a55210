"""The agent's side of a programme's server socket, against a stand-in server on a Unix
socket in a temporary directory (Liquidsoap's own answers are tested in integration)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from radioagent.programmes import control
from radioagent.programmes.control import ControlError, liquidsoap_command, prefer, read_state
from radioagent.programmes.state import ProgrammeState
from radioagent.validation import ValidationError

STATE = {
    "preferred": "",
    "on_air": "main.mp3",
    "lufs": -18.04,
    "inputs": [
        {"name": "main.mp3", "connected": True, "ready": True, "silent": False, "lufs": -18.0}
    ],
}
Reply = Callable[[str], bytes | None]  # command -> bytes to send (None: say nothing)


def serving(directory: Path, reply: Reply) -> Callable[[Callable[[Path], Awaitable]], object]:
    """Runs `talk(socket)` against a server answering each command with `reply`."""

    def run(talk: Callable[[Path], Awaitable]) -> object:
        async def main() -> object:
            socket = directory / "p.sock"

            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                command = (await reader.readline()).decode().strip()
                data = reply(command)
                if data is None:
                    await asyncio.sleep(5)  # a hung Liquidsoap; the client gives up first
                else:
                    writer.write(data)
                    await writer.drain()
                writer.close()

            server = await asyncio.start_unix_server(answer, path=str(socket))
            async with server:
                return await talk(socket)

        return asyncio.run(main())

    return run


def liquidsoap_answer(text: str) -> bytes:
    return f"{text}\r\nEND\r\nBye!\r\n".encode()


def test_the_answer_is_what_comes_before_end(short_tmp: Path) -> None:
    run = serving(short_tmp, lambda command: liquidsoap_answer(f"you said {command}"))
    assert run(lambda socket: liquidsoap_command(socket, "programme.state")) == (
        "you said programme.state"
    )


def test_the_state_is_read_and_parsed(short_tmp: Path) -> None:
    run = serving(short_tmp, lambda _: liquidsoap_answer(json.dumps(STATE)))
    state = run(read_state)
    assert isinstance(state, ProgrammeState)
    assert state.on_air == "main.mp3"
    assert state.lufs == -18.0
    assert not state.blank


def test_an_answer_without_end_is_refused(short_tmp: Path) -> None:
    run = serving(short_tmp, lambda _: b"half an answer\r\n")
    with pytest.raises(ControlError, match="no END"):
        run(lambda socket: liquidsoap_command(socket, "programme.state"))


def test_garbage_for_a_state_is_refused(short_tmp: Path) -> None:
    run = serving(short_tmp, lambda _: liquidsoap_answer("{not json"))
    with pytest.raises(ValidationError, match="not JSON"):
        run(read_state)


def test_a_server_that_does_not_answer_is_given_up(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "COMMAND_TIMEOUT_S", 0.2)
    run = serving(short_tmp, lambda _: None)
    with pytest.raises(ControlError):
        run(lambda socket: liquidsoap_command(socket, "programme.state"))


def test_a_missing_socket_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=r"absent\.sock"):
        asyncio.run(liquidsoap_command(tmp_path / "absent.sock", "programme.state"))


def test_a_refused_preference_is_an_error(short_tmp: Path) -> None:
    run = serving(short_tmp, lambda _: liquidsoap_answer("error: not an input"))
    with pytest.raises(ControlError, match="not an input"):
        run(lambda socket: prefer(socket, "nowhere.mp3"))


def test_automatic_is_prefer_without_an_argument(short_tmp: Path) -> None:
    commands: list[str] = []

    def reply(command: str) -> bytes:
        commands.append(command)
        return liquidsoap_answer("ok")

    serving(short_tmp, reply)(lambda socket: prefer(socket, ""))
    assert commands == ["programme.prefer"]
