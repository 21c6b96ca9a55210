"""The etcd operations of certificates and their ACME orders, mixed into ClusterStore.

One node orders at a time: the claim is a key on the ordering agent's lease, so it goes
with that agent. Challenges lapse by themselves (their own short leases) should the
ordering node die before withdrawing them. A certificate replaces only the one its order
started from, so a slow order never overwrites a newer certificate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from radioagent.acme.http01 import key_authorization_problem
from radioagent.acme.state import (
    AcmeAccount,
    AcmeFailure,
    StoredCertificate,
    TxtChallenge,
    encode_account,
    encode_certificate,
    encode_failure,
    encode_txt_challenge,
)
from radioagent.store.keys import KeyLayout
from radioagent.validation import ValidationError


class AcmeRecords:
    layout: KeyLayout
    _call: Callable[..., Any]
    _transaction: Callable[..., tuple[bool, list]]
    _claim: Callable[[str, str, int], bool]
    _release: Callable[[str, str], bool]

    def claim_certificate_order(self, name: str, lease_id: int) -> bool:
        return self._claim(self.layout.acme_claim, name, lease_id)

    def release_certificate_order(self, name: str) -> bool:
        return self._release(self.layout.acme_claim, name)

    def put_acme_account(self, account: AcmeAccount) -> None:
        key = self.layout.acme_account
        value = encode_account(account)
        self._call("put the acme account", lambda client: client.put(key, value), writes=True)

    def _put_lapsing(self, key: str, value: str, lapse_seconds: int) -> None:
        lease = self._call("grant lease", lambda client: client.lease(lapse_seconds))
        self._call(f"put {key}", lambda client: client.put(key, value, lease=lease.id), writes=True)

    def put_acme_challenge(self, token: str, key_authorization: str, lapse_seconds: int) -> None:
        """An HTTP-01 challenge for every front door to answer. ValidationError for a token
        or key authorization that cannot be one."""
        problem = key_authorization_problem(token, key_authorization)
        if problem is not None:
            raise ValidationError([f"acme challenge: {problem}"])
        self._put_lapsing(self.layout.acme_challenge(token), key_authorization, lapse_seconds)

    def delete_acme_challenge(self, token: str) -> bool:
        """False if there was no such challenge."""
        key = self.layout.acme_challenge(token)
        return bool(self._call(f"delete {key}", lambda client: client.delete(key), writes=True))

    def put_txt_challenge(self, token: str, challenge: TxtChallenge, lapse_seconds: int) -> None:
        """A DNS-01 challenge: a TXT record every node's DNS answers."""
        key = self.layout.acme_txt_challenge(token)
        self._put_lapsing(key, encode_txt_challenge(challenge), lapse_seconds)

    def delete_txt_challenge(self, token: str) -> bool:
        key = self.layout.acme_txt_challenge(token)
        return bool(self._call(f"delete {key}", lambda client: client.delete(key), writes=True))

    def put_certificate(
        self, certificate: StoredCertificate, replaces: int, renewal_request: int | None
    ) -> bool:
        """Store a new certificate if the stored one is still the one of mod revision
        `replaces` (0: none); clears the last failure, and the renewal request if it is
        still the one of mod revision `renewal_request`. False if another node's was newer."""
        layout = self.layout
        stored, _ = self._transaction(
            "store the certificate",
            lambda client: [client.transactions.mod(layout.certificate) == replaces],
            lambda client: [
                client.transactions.put(layout.certificate, encode_certificate(certificate)),
                client.transactions.delete(layout.acme_failure),
            ],
        )
        if stored and renewal_request is not None:
            self._transaction(
                "clear the renewal request",
                lambda client: [
                    client.transactions.mod(layout.acme_renewal_request) == renewal_request
                ],
                lambda client: [client.transactions.delete(layout.acme_renewal_request)],
            )
        return stored

    def put_acme_failure(self, failure: AcmeFailure) -> None:
        key = self.layout.acme_failure
        value = encode_failure(failure)
        self._call("put the acme failure", lambda client: client.put(key, value), writes=True)

    def request_renewal(self, at: float) -> None:
        """radioctl cert renew: the next loop of any node orders a new certificate."""
        key = self.layout.acme_renewal_request
        value = json.dumps({"at": at})
        self._call("request a renewal", lambda client: client.put(key, value), writes=True)
