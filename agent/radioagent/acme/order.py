"""One certificate order at an ACME CA (RFC 8555), through Debian's python3-acme (certbot's
library), in a child process of the agent (`python3 -m radioagent.acme.order`; what it
says to the agent: protocol.py).

The account key is kept in etcd, so any node renews under the one account (CAs rate-limit
new accounts); the certificate's key is new at every order (ECDSA P-256: smaller and
quicker to handshake than RSA, and every current client takes it).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

import josepy
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from radioagent.acme.protocol import (
    GO,
    AcmeOrderError,
    ChallengeToPublish,
    account_document,
    account_from,
    line,
)
from radioagent.acme.state import AcmeAccount

USER_AGENT = "radio-agent"
NETWORK_TIMEOUT = 30.0  # each request to the CA
# python3-acme logs whole requests and replies at DEBUG; nothing secret is in them (the
# CSR carries no key), but they drown the agent's own log.
logging.getLogger("acme").setLevel(logging.INFO)


@dataclass(frozen=True)
class Challenge:
    """One challenge to answer: what the cluster must publish, and the CA's objects."""

    published: ChallengeToPublish
    body: messages.ChallengeBody
    response: challenges.ChallengeResponse


@dataclass(frozen=True)
class PlacedOrder:
    resource: messages.OrderResource
    key_pem: str  # the new certificate's key (PKCS#8 PEM)
    challenges: tuple[Challenge, ...]  # empty when the CA still trusts earlier proofs


def _failure(step: str, error: Exception) -> AcmeOrderError:
    if isinstance(error, errors.ValidationError):
        reasons = [
            f"{authorization.body.identifier.value}: {challenge.error.detail or challenge.error}"
            for authorization in error.failed_authzrs
            for challenge in authorization.body.challenges
            if challenge.error is not None
        ]
        return AcmeOrderError(f"{step}: the CA could not validate {'; '.join(reasons)}")
    return AcmeOrderError(f"{step}: {type(error).__name__}: {error}")


class AcmeSession:
    """A connection to one CA under one account (registered on first use)."""

    def __init__(
        self,
        directory_url: str,
        account: AcmeAccount | None,
        *,
        email: str | None,
        ca_file: str | None,
        timeout: float,
    ) -> None:
        """`account`: the cluster's, reused if it belongs to this CA. `ca_file`: the CA
        bundle that signs the ACME server's own HTTPS (a private CA); None: the system's."""
        try:
            if account is not None and account.directory_url == directory_url:
                key = josepy.JWK.json_loads(account.key_json)
            else:
                account = None
                key = josepy.JWKRSA(key=rsa.generate_private_key(65537, 2048))
            network = client.ClientNetwork(
                key,
                user_agent=USER_AGENT,
                verify_ssl=ca_file or True,  # type: ignore[arg-type]  # requests takes a path
                timeout=int(timeout),
            )
            self.client = client.ClientV2(
                client.ClientV2.get_directory(directory_url, network), network
            )
            if account is not None:
                network.account = messages.RegistrationResource(
                    uri=account.uri, body=messages.Registration()
                )
            else:
                registration = self.client.new_account(
                    messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
                )
                account = AcmeAccount(directory_url, registration.uri, key.json_dumps())
        except Exception as error:  # requests, josepy and acme each raise their own
            raise _failure(f"account at {directory_url}", error) from error
        self.account = account
        self.key = key

    def place(self, names: tuple[str, ...], kind: str) -> PlacedOrder:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            resource = self.client.new_order(crypto_util.make_csr(key_pem, list(names)))
            found = [
                self._challenge(authorization, kind)
                for authorization in resource.authorizations
                if authorization.body.status != messages.STATUS_VALID
            ]
        except Exception as error:
            raise _failure(f"order for {', '.join(names)}", error) from error
        return PlacedOrder(resource, key_pem.decode(), tuple(found))

    def _challenge(self, authorization: messages.AuthorizationResource, kind: str) -> Challenge:
        identifier = authorization.body.identifier.value
        for body in authorization.body.challenges:
            if body.chall.typ != kind:
                continue
            response, validation = body.response_and_validation(self.key)
            token = body.chall.encode("token")
            name = (
                body.chall.validation_domain_name(identifier).lower()
                if isinstance(body.chall, challenges.DNS01)
                else identifier
            )
            published = ChallengeToPublish(kind, identifier, token, name, validation)
            return Challenge(published, body, response)
        offered = ", ".join(body.chall.typ for body in authorization.body.challenges)
        raise AcmeOrderError(f"the CA offers {offered} for {identifier}, not {kind}")

    def answer(self, challenge: Challenge) -> None:
        """Tell the CA to validate now (what it asks must already be published)."""
        try:
            self.client.answer_challenge(challenge.body, challenge.response)
        except Exception as error:
            raise _failure(f"answer for {challenge.published.identifier}", error) from error

    def finish(self, order: PlacedOrder, timeout: float) -> str:
        """Wait for the CA's validations, then finalize; the PEM chain."""
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        try:
            finished: Any = self.client.poll_and_finalize(order.resource, deadline)
        except Exception as error:
            raise _failure("validation and issuance", error) from error
        return str(finished.fullchain_pem)


def _say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(line(message))
    sys.stdout.buffer.flush()


def run_order(request: dict[str, Any]) -> None:
    """The whole order, told to the agent step by step on stdout."""
    account = None if request["account"] is None else account_from(request["account"])
    session = AcmeSession(
        request["directory_url"],
        account,
        email=request["email"],
        ca_file=request["ca_file"],
        timeout=NETWORK_TIMEOUT,
    )
    _say({"account": account_document(session.account)})
    placed = session.place(tuple(request["names"]), request["challenge"])
    published = [vars(challenge.published) for challenge in placed.challenges]
    _say({"key_pem": placed.key_pem, "challenges": published})
    if sys.stdin.readline().strip() != GO:
        raise AcmeOrderError("the agent did not say go")
    for challenge in placed.challenges:
        session.answer(challenge)
    _say({"chain": session.finish(placed, float(request["timeout"]))})


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="radio-agent acme order: %(message)s")
    try:
        run_order(json.loads(sys.stdin.readline()))
    except (AcmeOrderError, KeyError, TypeError, ValueError) as error:
        _say({"error": str(error) or type(error).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
