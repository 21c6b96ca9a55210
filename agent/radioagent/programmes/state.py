"""What a programme's Liquidsoap says of itself (its `programme.state` answer), as plain
values. Pure: parsing and checks only."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from radioagent.validation import ValidationError

LUFS_FLOOR = -120.0  # the script's floor: digital silence reads as this


@dataclass(frozen=True)
class InputState:
    name: str
    connected: bool  # its stream is open (the studio streams to the cluster)
    ready: bool  # it has audio to play
    silent: bool  # below the silence threshold for the silence time
    lufs: float  # short-term loudness (EBU R128, 3 s), to 0.1 LU


@dataclass(frozen=True)
class ProgrammeState:
    preferred: str  # "": none, the automatic order
    on_air: str  # "": the safe blank
    lufs: float
    inputs: tuple[InputState, ...]

    @property
    def blank(self) -> bool:
        return self.on_air == ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "preferred": self.preferred or None,
            "on_air": self.on_air or None,
            "blank": self.blank,
            "lufs": self.lufs,
            "inputs": {
                entry.name: {
                    "connected": entry.connected,
                    "ready": entry.ready,
                    "silent": entry.silent,
                    "lufs": entry.lufs,
                }
                for entry in self.inputs
            },
        }


def _loudness(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError([f"programme state: loudness {value!r} is not a number"])
    # Rounded: the status that carries it is rewritten in etcd only when it changes.
    return round(max(LUFS_FLOOR, min(0.0, float(value))), 1)


def _input_state(given: Any) -> InputState:
    if not isinstance(given, dict) or not isinstance(given.get("name"), str):
        raise ValidationError([f"programme state: input {given!r} is not an object with a name"])
    flags = {key: given.get(key) for key in ("connected", "ready", "silent")}
    if not all(isinstance(value, bool) for value in flags.values()):
        raise ValidationError([f"programme state: input {given['name']!r} lacks its flags"])
    return InputState(
        given["name"],
        connected=bool(flags["connected"]),
        ready=bool(flags["ready"]),
        silent=bool(flags["silent"]),
        lufs=_loudness(given.get("lufs")),
    )


def programme_state_from_json(text: str) -> ProgrammeState:
    """ValidationError for anything but the script's answer."""
    try:
        decoded = json.loads(text)
    except ValueError as error:
        raise ValidationError([f"programme state: not JSON ({error})"]) from error
    if not isinstance(decoded, dict) or not isinstance(decoded.get("inputs"), list):
        raise ValidationError(["programme state: not an object with inputs"])
    preferred, on_air = decoded.get("preferred"), decoded.get("on_air")
    if not isinstance(preferred, str) or not isinstance(on_air, str):
        raise ValidationError(["programme state: preferred and on_air must be strings"])
    return ProgrammeState(
        preferred,
        on_air,
        _loudness(decoded.get("lufs")),
        tuple(_input_state(entry) for entry in decoded["inputs"]),
    )


def programme_reports_valid(value: Any) -> bool:
    """Whether a node status's `programmes` field has the shape `to_dict` gives (read
    from etcd, written by any agent version: extra keys are fine)."""

    def is_loudness(number: Any) -> bool:
        return isinstance(number, int | float) and not isinstance(number, bool)

    def input_valid(entry: Any) -> bool:
        return (
            isinstance(entry, dict)
            and all(isinstance(entry.get(key), bool) for key in ("connected", "silent"))
            and is_loudness(entry.get("lufs"))
        )

    def report_valid(report: Any) -> bool:
        return (
            isinstance(report, dict)
            and all(
                report.get(key) is None or isinstance(report.get(key), str)
                for key in ("preferred", "on_air")
            )
            and isinstance(report.get("blank"), bool)
            and is_loudness(report.get("lufs"))
            and isinstance(report.get("inputs"), dict)
            and all(input_valid(entry) for entry in report["inputs"].values())
        )

    return isinstance(value, dict) and all(
        isinstance(name, str) and report_valid(report) for name, report in value.items()
    )
