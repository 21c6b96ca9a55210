"""Small checks shared by the config and mount validators.

Hand-written rather than a schema library: an operator's error must name the field, the
value given and what would be accepted, in one line, and several of our rules span fields
(timing, fallbacks). Each check returns a problem string or None.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any


class ValidationError(ValueError):
    """Bad input; `problems` lists every problem found, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def unknown_keys(where: str, given: Mapping[str, Any], known: set[str]) -> list[str]:
    return [
        f"{where}{key}: unknown key (known: {', '.join(sorted(known))})"
        for key in given
        if key not in known
    ]


def check_int(field: str, value: Any, minimum: int, maximum: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{field}: {value!r} is not an integer (expected {minimum}..{maximum})"
    if not minimum <= value <= maximum:
        return f"{field}: {value} is out of range (expected {minimum}..{maximum})"
    return None


def check_number(field: str, value: Any, minimum: float, maximum: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{field}: {value!r} is not a number (expected {minimum}..{maximum})"
    if not minimum <= value <= maximum:
        return f"{field}: {value} is out of range (expected {minimum}..{maximum})"
    return None


def check_string(
    field: str,
    value: Any,
    pattern: str,
    description: str,
    max_length: int = 255,
    *,
    secret: bool = False,
) -> str | None:
    """A secret's value is never repeated in the message: messages end up in logs."""
    shown = "the value" if secret else repr(value)
    if not isinstance(value, str):
        return f"{field}: {shown} is not a string (expected {description})"
    if len(value) > max_length:
        return f"{field}: {len(value)} characters is too long (at most {max_length})"
    if not re.fullmatch(pattern, value):
        return f"{field}: {shown} is not valid (expected {description})"
    return None


def check_choice(field: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if value not in choices:
        return f"{field}: {value!r} is not one of {', '.join(choices)}"
    return None


def text_problem(field: str, value: Any, max_length: int) -> str | None:
    """Free text shown to people (a title): a string, not too long, no control characters."""
    if not isinstance(value, str):
        return f"{field}: {value!r} is not a string"
    if len(value) > max_length:
        return f"{field}: {len(value)} characters is too long (at most {max_length})"
    if any(unicodedata.category(character) == "Cc" for character in value):
        return f"{field}: has control characters"
    return None
