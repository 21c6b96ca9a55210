"""HTTP-01 challenges (RFC 8555, section 8.3): whichever node the CA asks, over plain HTTP
on port 80, answers `/.well-known/acme-challenge/<token>` with the key authorization the
ordering node put in etcd. Pure: the checks and the answer, from the cluster state."""

from __future__ import annotations

import re
from collections.abc import Mapping

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_BASE64URL = r"[A-Za-z0-9_-]"
TOKEN_PATTERN = re.compile(rf"{_BASE64URL}{{16,256}}")  # the RFC asks for 128 bits at least
THUMBPRINT_PATTERN = re.compile(rf"{_BASE64URL}{{43}}")  # SHA-256, base64url, no padding


def key_authorization_problem(token: str, key_authorization: str) -> str | None:
    """Why `key_authorization` cannot answer `token`'s challenge, or None: it is the token,
    a dot, and the account key's thumbprint (RFC 8555, section 8.1)."""
    if not TOKEN_PATTERN.fullmatch(token):
        return f"{token!r} is not an ACME token (16-256 base64url characters)"
    prefix, dot, thumbprint = key_authorization.partition(".")
    if prefix != token or not dot or not THUMBPRINT_PATTERN.fullmatch(thumbprint):
        return "not the token's key authorization (token.thumbprint)"
    return None


def challenge_answer(path: str, challenges: Mapping[str, str]) -> str | None:
    """The key authorization for a challenge path, or None when there is no such token."""
    token = path.removeprefix(CHALLENGE_PREFIX)
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    return challenges.get(token)
