"""Talking to a programme's Liquidsoap over its server socket (Liquidsoap's telnet
protocol on a Unix socket): a command, then its answer up to the line END.

Why the server and not the harbor HTTP API or the Prometheus exporter: the socket needs no
TCP port per programme (nothing to allocate, firewall or guard with a password), only the
agent's user can open it (mode 0600), and the same channel both reads the state and sets
the preferred input. The exporter could only be read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from radioagent.programmes.state import ProgrammeState, programme_state_from_json

COMMAND_TIMEOUT_S = 2.0
MAX_ANSWER_BYTES = 64 * 1024


class ControlError(Exception):
    """The programme's Liquidsoap did not answer as it should."""


async def liquidsoap_command(socket: Path, command: str) -> str:
    """The answer to one command. ControlError if the socket is absent, slow or odd."""
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(socket))
            try:
                writer.write(f"{command}\nquit\n".encode())
                await writer.drain()
                # `quit` makes the server close the connection: read to the end, bounded.
                answer = b""
                while len(answer) <= MAX_ANSWER_BYTES:
                    more = await reader.read(MAX_ANSWER_BYTES)
                    if not more:
                        break
                    answer += more
            finally:
                writer.close()
    except (OSError, TimeoutError) as error:
        raise ControlError(f"{socket.name}: {error or type(error).__name__}") from error
    lines = answer.decode(errors="replace").splitlines()
    if "END" not in lines:
        raise ControlError(
            f"{socket.name}: no END in the answer to {command.split(maxsplit=1)[0]!r}"
        )
    return "\n".join(lines[: lines.index("END")])


async def read_state(socket: Path) -> ProgrammeState:
    return programme_state_from_json(await liquidsoap_command(socket, "programme.state"))


async def prefer(socket: Path, input_name: str) -> None:
    """`input_name` "": the automatic order."""
    answer = await liquidsoap_command(socket, f"programme.prefer {input_name}".rstrip())
    if answer.strip() != "ok":
        raise ControlError(f"{socket.name}: prefer {input_name!r}: {answer.strip()}")


async def go_on_air(socket: Path) -> None:
    """A standby's output on: it has won the programme."""
    answer = await liquidsoap_command(socket, "programme.air")
    if answer.strip() != "ok":
        raise ControlError(f"{socket.name}: air: {answer.strip()}")
