"""Reading an operator's files: a clear one-line error, never the file's content (it may
hold passwords)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from radioagent.validation import ValidationError


def read_text(path: str | Path) -> str:
    """The file's text; `-` reads standard input (how the radios playbook passes files)."""
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError([f"{path}: cannot read ({error.strerror})"]) from error
    except UnicodeDecodeError as error:
        raise ValidationError([f"{path}: not UTF-8 text"]) from error


def load_yaml_text(path: str | Path) -> Any:
    """YAML from a file; a syntax error names the line, never its content."""
    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # `from None`: PyYAML's own message quotes the line, and a traceback printed
        # anywhere later would show it through the exception's cause
        raise ValidationError([f"{path}: not valid YAML{where}"]) from None
