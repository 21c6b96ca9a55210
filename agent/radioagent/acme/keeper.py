"""Every node with ACME set keeps the cluster's certificate: it installs the one in etcd
into its front door's files, and, when a certificate is due (renewal.py) and this node wins
the claim, it orders one. The order's steps are blocking (python3-acme) and run in worker
threads; the loop that keeps the lease never waits for a CA."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from radioagent.acme.protocol import (
    GO,
    AcmeOrderError,
    ChallengeToPublish,
    account_document,
    account_from,
    challenges_from,
    message_from,
)
from radioagent.acme.renewal import should_order, wanted_names
from radioagent.acme.state import AcmeFailure, StoredCertificate, TxtChallenge
from radioagent.certfacts import (
    CertificateFacts,
    CertificateProblem,
    read_facts,
    serving_problems,
)
from radioagent.children import python_module
from radioagent.config import AgentConfig
from radioagent.coordination.state import ClusterState

if TYPE_CHECKING:
    from radioagent.store.agent_store import AgentStore

log = logging.getLogger(__name__)
PUBLISHED_WAIT_SECONDS = 30.0  # for every node to serve a challenge before the CA asks
PUBLISHED_POLL_SECONDS = 0.5
CHALLENGE_LAPSE_MARGIN = 60  # seconds a challenge outlives the validation timeout
ORDER_STEP_SECONDS = 120.0  # the longest the order process may take for one step
ORDER_LINE_LIMIT = 1024 * 1024  # bytes of one line from it: a chain is a few KB


class CertificateKeeper:
    def __init__(self, config: AgentConfig, store: AgentStore) -> None:
        door = config.front_door
        if not (config.acme.directory_url and door.tls_cert_file and door.tls_key_file):
            raise ValueError("ACME needs acme.directory_url and the front door's TLS files")
        self.acme = config.acme
        self.dns = config.dns
        self.https_name = door.https_name
        self.cert_file, self.key_file = Path(door.tls_cert_file), Path(door.tls_key_file)
        self.node_name = config.node_name
        self.public_address = door.public_address or config.node_address
        self.store = store
        self.cluster_name = config.acme.name or config.dns.zone or ""
        self.orders: Counter[str] = Counter()  # result -> count, for /metrics
        # The certificate revision last installed or refused (a refusal is logged once).
        self._seen_revision: int | None = None
        self._order: asyncio.Task[None] | None = None

    # --- installing the cluster's certificate --------------------------------------------

    async def install(self, state: ClusterState, now: float) -> CertificateFacts | None:
        """Write the cluster's certificate to the front door's files if it is new and may
        be served; its facts if it was written, for the front door to load it with (read
        once, in a worker thread: certfacts runs a child process)."""
        certificate, revision = state.acme.certificate, state.acme.certificate_revision
        if certificate is None or revision == self._seen_revision:
            return None
        try:
            facts = await asyncio.to_thread(read_facts, certificate.chain_pem.encode())
            problems = serving_problems(facts, self.https_name, now)
        except CertificateProblem as error:
            problems = [str(error)]
        if problems:
            self._seen_revision = revision
            log.error(
                "tls: the cluster's certificate (ordered by %s) is not served: %s",
                certificate.ordered_by,
                "; ".join(problems),
            )
            return None
        _write_private(self.key_file, certificate.key_pem)
        _write_private(self.cert_file, certificate.chain_pem)
        self._seen_revision = revision
        log.info(
            "tls: installed the cluster's certificate for %s, valid until %s",
            ", ".join(certificate.names),
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(certificate.not_after)),
        )
        return facts

    # --- ordering ------------------------------------------------------------------------

    def wanted(self, state: ClusterState) -> tuple[str, ...]:
        """With HTTP-01, every node's name, this node's own included even before its
        report is in etcd (an order for the others only would not serve here)."""
        https_names = [s.https_name for s in state.nodes.values() if s.https_name]
        if self.https_name:
            https_names.append(self.https_name)
        return wanted_names(self.cluster_name, self.acme.challenge, https_names)

    def consider(self, state: ClusterState, lease_id: int | None, now: float) -> None:
        """Start an order if one is due and none runs here; it runs on by itself."""
        if lease_id is None or (self._order is not None and not self._order.done()):
            return
        wanted = self.wanted(state)
        reason = should_order(state.acme, wanted, now)
        if reason is None:
            return
        self._order = asyncio.create_task(
            self._claim_and_order(state, wanted, reason, lease_id), name="certificate order"
        )

    async def stop(self) -> None:
        if self._order is not None:
            self._order.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._order

    async def _claim_and_order(
        self, state: ClusterState, names: tuple[str, ...], reason: str, lease_id: int
    ) -> None:
        name = self.node_name
        if not await self.store.apply(lambda s: s.claim_certificate_order(name, lease_id)):
            return  # another node orders
        log.info("acme: ordering a certificate for %s: %s", ", ".join(names), reason)
        try:
            await self._order_certificate(state, names)
        except Exception as error:  # a CA's refusal, the network, etcd: all end the same way
            self.orders["failed"] += 1
            log.error("acme: the order failed: %s", error)
            now = time.time()
            failure = AcmeFailure(now, name, str(error)[:2000], now + self.acme.retry_seconds)
            with contextlib.suppress(Exception):
                await self.store.apply(lambda s: s.put_acme_failure(failure))
        finally:
            with contextlib.suppress(Exception):
                await self.store.apply(lambda s: s.release_certificate_order(name))

    async def _order_certificate(self, state: ClusterState, names: tuple[str, ...]) -> None:
        acme = self.acme
        request = {
            "directory_url": acme.directory_url,
            "account": account_document(state.acme.account),
            "email": acme.email,
            "ca_file": acme.ca_file,
            "names": list(names),
            "challenge": acme.challenge,
            "timeout": acme.validation_timeout,
        }
        async with OrderProcess(request, acme.validation_timeout + ORDER_STEP_SECONDS) as order:
            account = account_from((await order.next("account"))["account"])
            if account != state.acme.account:
                await self.store.apply(lambda s: s.put_acme_account(account))
            placed = await order.next("challenges")
            challenges = challenges_from(placed["challenges"])
            try:
                for challenge in challenges:
                    await self._publish(challenge)
                await self._wait_published(challenges, state)
                order.go()
                chain = (await order.next("chain"))["chain"]
            finally:
                for challenge in challenges:
                    with contextlib.suppress(Exception):
                        await self._withdraw(challenge)
        facts = read_facts(str(chain).encode())
        certificate = StoredCertificate(
            str(chain),
            str(placed["key_pem"]),
            facts.names,
            facts.not_before,
            facts.not_after,
            self.node_name,
            time.time(),
        )
        revision, renewal = state.acme.certificate_revision, state.acme.renewal_requested
        if await self.store.apply(lambda s: s.put_certificate(certificate, revision, renewal)):
            self.orders["issued"] += 1
            log.info("acme: certificate issued for %s by %s", ", ".join(names), facts.issuer)
        else:
            log.warning("acme: another node stored a certificate meanwhile; this one dropped")

    async def _publish(self, challenge: ChallengeToPublish) -> None:
        lapse = int(self.acme.validation_timeout) + CHALLENGE_LAPSE_MARGIN
        token = challenge.token
        if challenge.kind == "dns-01":
            txt = TxtChallenge(challenge.publish_name, challenge.publish_value)
            await self.store.apply(lambda s: s.put_txt_challenge(token, txt, lapse))
        else:
            value = challenge.publish_value
            await self.store.apply(lambda s: s.put_acme_challenge(token, value, lapse))

    async def _withdraw(self, challenge: ChallengeToPublish) -> None:
        token = challenge.token
        if challenge.kind == "dns-01":
            await self.store.apply(lambda s: s.delete_txt_challenge(token))
        else:
            await self.store.apply(lambda s: s.delete_acme_challenge(token))

    # --- waiting until every node serves the challenges ------------------------------------

    async def _wait_published(
        self, challenges: tuple[ChallengeToPublish, ...], state: ClusterState
    ) -> None:
        """Until every node that may be asked serves every challenge (bounded): the CA asks
        any nameserver, or any node the name points to. Not confirmed in time is logged and
        the order goes on: the CA is the judge."""
        if not challenges:
            return
        checks = (
            self._dns_checks(challenges)
            if challenges[0].kind == "dns-01"
            else self._http_checks(challenges, state)
        )
        deadline = time.monotonic() + PUBLISHED_WAIT_SECONDS
        pending = dict(checks)
        async with aiohttp.ClientSession() as http:
            while pending and time.monotonic() < deadline:
                for where, check in list(pending.items()):
                    with contextlib.suppress(Exception):
                        if await check(http):
                            del pending[where]
                if pending:
                    await asyncio.sleep(PUBLISHED_POLL_SECONDS)
        if pending:
            log.warning("acme: not confirmed served by %s; asking the CA anyway", sorted(pending))

    def _dns_checks(
        self, challenges: tuple[ChallengeToPublish, ...]
    ) -> dict[str, Callable[[aiohttp.ClientSession], Awaitable[bool]]]:
        wanted: dict[str, set[str]] = {}
        for challenge in challenges:
            wanted.setdefault(challenge.publish_name, set()).add(challenge.publish_value)
        nameservers = dict(self.dns.nameservers or [(self.node_name, self.public_address)])
        port = self.dns.port

        def check(address: str) -> Callable[[aiohttp.ClientSession], Awaitable[bool]]:
            async def served(_: aiohttp.ClientSession) -> bool:
                return await asyncio.to_thread(_txt_served, address, port, wanted)

            return served

        return {f"nameserver {address}": check(address) for address in nameservers.values()}

    def _http_checks(
        self, challenges: tuple[ChallengeToPublish, ...], state: ClusterState
    ) -> dict[str, Callable[[aiohttp.ClientSession], Awaitable[bool]]]:
        def check(url: str, expected: str) -> Callable[[aiohttp.ClientSession], Awaitable[bool]]:
            async def served(http: aiohttp.ClientSession) -> bool:
                timeout = aiohttp.ClientTimeout(total=2)
                async with http.get(url, timeout=timeout) as response:
                    return response.status == 200 and await response.text() == expected

            return served

        checks = {}
        for status in state.nodes.values():
            if not status.front_door_ports:
                continue
            base = f"http://{_host(status.listener_address)}:{status.front_door_ports[0]}"
            for challenge in challenges:
                url = f"{base}/.well-known/acme-challenge/{challenge.token}"
                checks[url] = check(url, challenge.publish_value)
        return checks


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _txt_served(address: str, port: int, wanted: dict[str, set[str]]) -> bool:
    from dnslib import QTYPE, DNSRecord  # noqa: PLC0415 - nodes with DNS-01 have it

    for name, values in wanted.items():
        reply = DNSRecord.parse(DNSRecord.question(name, "TXT").send(address, port, timeout=1))
        served = {
            b"".join(record.rdata.data).decode() for record in reply.rr if record.rtype == QTYPE.TXT
        }
        if not values <= served:
            return False
    return True


def _write_private(path: Path, text: str) -> None:
    """Readable by the agent alone, and replaced whole: the front door never loads half a
    file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class OrderProcess:
    """The order's child process (order.py): started with the request, read a message at
    a time (each within `step_timeout`), killed on the way out if it is still running."""

    def __init__(self, request: Mapping[str, object], step_timeout: float) -> None:
        self.request = request
        self.step_timeout = step_timeout
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> OrderProcess:
        argv, environment = python_module("radioagent.acme.order")
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=environment,
            limit=ORDER_LINE_LIMIT,
        )
        self._write(json.dumps(self.request))
        return self

    def _pipes(self) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise AcmeOrderError("the order process is not running")
        return process.stdin, process.stdout

    def _write(self, text: str) -> None:
        self._pipes()[0].write(text.encode() + b"\n")

    def go(self) -> None:
        self._write(GO)

    async def next(self, expected: str) -> dict[str, object]:
        try:
            raw = await asyncio.wait_for(self._pipes()[1].readline(), self.step_timeout)
        except TimeoutError as error:
            raise AcmeOrderError(f"no {expected} from the order process in time") from error
        return message_from(raw, expected)

    async def __aexit__(self, *_: object) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
