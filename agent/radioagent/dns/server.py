"""The zone on UDP and TCP: thin I/O around wire.reply_to. The view is replaced each loop
(`update`); a query is answered from the view of that moment, with no await in between,
so one packet's work is bounded by the parser and the view's size."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import Counter
from collections.abc import Callable

from radioagent.dns.wire import MAX_QUERY_BYTES, reply_to
from radioagent.dns.zone import ZoneView

log = logging.getLogger(__name__)
TCP_IDLE_SECONDS = 10.0  # a TCP client silent this long is closed
TCP_QUERIES_PER_CONNECTION = 100
MAX_TCP_CONNECTIONS = 256
_LENGTH = struct.Struct("!H")


class DnsServer:
    def __init__(self, bind_address: str, port: int, view: ZoneView) -> None:
        self.bind_address = bind_address
        self.port = port
        self.view = view
        self.answered: Counter[str] = Counter()  # by rcode name
        self.dropped = 0  # packets that got no reply, or raised in the parser
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_clients: set[asyncio.Task[None]] = set()

    def update(self, view: ZoneView) -> None:
        self.view = view

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self.reply), local_addr=(self.bind_address, self.port)
        )
        self._tcp = await asyncio.start_server(self._serve_tcp, self.bind_address, self.port)
        log.info("dns: zone %s on %s port %d", self.view.zone, self.bind_address, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for task in self._tcp_clients:
                task.cancel()
            await self._tcp.wait_closed()

    def reply(self, packet: bytes, *, over_udp: bool) -> bytes | None:
        try:
            reply = reply_to(packet, self.view, over_udp=over_udp)
        except Exception:  # a parser surprise must cost one packet, never the server
            log.debug("dns: a packet raised", exc_info=True)
            reply = None
        if reply is None:
            self.dropped += 1
            return None
        self.answered[reply.rcode.name] += 1
        return reply.data

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._tcp_clients) >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._tcp_clients.add(task)
        try:
            for _ in range(TCP_QUERIES_PER_CONNECTION):
                (length,) = _LENGTH.unpack(
                    await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                )
                if length > MAX_QUERY_BYTES:
                    break
                packet = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_SECONDS)
                data = self.reply(packet, over_udp=False)
                if data is None:
                    break
                writer.write(_LENGTH.pack(len(data)) + data)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, reply: Callable[..., bytes | None]) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.reply(data, over_udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
