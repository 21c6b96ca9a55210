"""What a mount's name may be. Its own module: mount specs and programme specs both check
names, and neither should import the other for it."""

from __future__ import annotations

from typing import Any

from radioagent.validation import check_string

# A mount name is one path segment: no slash, no "..", starts with a letter or digit
# (names starting with "_" are the agent's own, like the holding mounts).
MOUNT_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
MOUNT_NAME_DESCRIPTION = "1-63 of A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'"


def mount_name_problem(field: str, value: Any) -> str | None:
    return check_string(
        field, value, MOUNT_NAME_PATTERN, f"a mount name: {MOUNT_NAME_DESCRIPTION}", 63
    )
