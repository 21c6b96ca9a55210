"""A programme's spec: its inputs in order, when an input counts as silent, how long a
returning input waits. Data and validation, no I/O.

    - name: radio.mp3
      programme:
        inputs:
          - studio-a.mp3                               # automatic
          - studio-b.mp3
          - {mount: override.mp3, automatic: false}   # on air only when an operator prefers it
          - automation.mp3
        silence: {threshold_db: -40, seconds: 10}
        hold_seconds: 5
        loudness: {min_lufs: -30, max_lufs: -9}         # the alert's range (short-term)

The chain always ends in a safe blank (silence in the programme's format), so listeners
stay connected whatever happens to the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radioagent.names import mount_name_problem
from radioagent.validation import check_number, unknown_keys

MAX_INPUTS = 16
PROGRAMME_KEYS = {"inputs", "silence", "hold_seconds", "loudness"}
INPUT_KEYS = {"mount", "automatic"}
SILENCE_KEYS = {"threshold_db", "seconds"}
LOUDNESS_KEYS = {"min_lufs", "max_lufs"}


@dataclass(frozen=True)
class ProgrammeInput:
    mount: str
    automatic: bool = True  # False: on air only while an operator prefers it


@dataclass(frozen=True)
class Silence:
    """An input below `threshold_db` (dBFS) for `seconds` counts as silent (dead air)."""

    threshold_db: float = -40.0
    seconds: float = 10.0


@dataclass(frozen=True)
class LoudnessRange:
    """Where the output's short-term loudness should stay; outside it for minutes, an
    alert fires (the agents export both bounds next to the loudness)."""

    min_lufs: float = -30.0
    max_lufs: float = -9.0


@dataclass(frozen=True)
class Programme:
    inputs: tuple[ProgrammeInput, ...]
    silence: Silence = field(default_factory=Silence)
    hold_seconds: float = 5.0  # a returning input is usable this long before it takes over
    loudness: LoudnessRange = field(default_factory=LoudnessRange)

    def first_choice(self, preferred: str | None) -> str:
        """The input that should be on air when every input is fine."""
        if preferred in self.input_names:
            return preferred
        return next(entry.mount for entry in self.inputs if entry.automatic)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(entry.mount for entry in self.inputs)


def _input_problems(where: str, given: Any) -> list[str]:
    if isinstance(given, str):
        problem = mount_name_problem(where, given)
        return [problem] if problem else []
    if not isinstance(given, dict):
        return [f"{where}: {given!r} is neither a mount name nor a mapping (mount, automatic)"]
    problems = unknown_keys(f"{where}.", given, INPUT_KEYS)
    if "mount" not in given:
        problems.append(f"{where}.mount: missing")
    else:
        problem = mount_name_problem(f"{where}.mount", given["mount"])
        problems += [problem] if problem else []
    if not isinstance(given.get("automatic", True), bool):
        problems.append(f"{where}.automatic: {given['automatic']!r} is not true or false")
    return problems


def _input(given: str | dict) -> ProgrammeInput:
    if isinstance(given, str):
        return ProgrammeInput(given)
    return ProgrammeInput(given["mount"], given.get("automatic", True))


def _inputs_problems(given: Any, own_name: Any) -> list[str]:
    if not isinstance(given, list) or not given:
        return ["programme.inputs: expected a list of at least one input"]
    if len(given) > MAX_INPUTS:
        return [f"programme.inputs: {len(given)} inputs is too many (at most {MAX_INPUTS})"]
    problems = []
    for index, entry in enumerate(given):
        problems += _input_problems(f"programme.inputs[{index}]", entry)
    if problems:
        return problems
    inputs = [_input(entry) for entry in given]
    names = [entry.mount for entry in inputs]
    problems += [
        f"programme.inputs: {name!r} is listed more than once"
        for name in sorted({name for name in names if names.count(name) > 1})
    ]
    if own_name in names:
        problems.append(
            f"programme.inputs[{names.index(own_name)}]: {own_name!r} is the programme itself"
        )
    if not any(entry.automatic for entry in inputs):
        problems.append(
            "programme.inputs: every input is manual-only (automatic: false); at least one "
            "must be automatic, or the programme is blank until an operator prefers one"
        )
    return problems


def _silence_problems(given: Any) -> list[str]:
    if not isinstance(given, dict):
        return [f"programme.silence: {given!r} is not a mapping (keys: threshold_db, seconds)"]
    problems = unknown_keys("programme.silence.", given, SILENCE_KEYS)
    checks = [
        check_number("programme.silence.threshold_db", given.get("threshold_db", -40.0), -90, -10),
        check_number("programme.silence.seconds", given.get("seconds", 10.0), 1, 600),
    ]
    return problems + [problem for problem in checks if problem]


def _loudness_problems(given: Any) -> list[str]:
    if not isinstance(given, dict):
        return [f"programme.loudness: {given!r} is not a mapping (keys: min_lufs, max_lufs)"]
    problems = unknown_keys("programme.loudness.", given, LOUDNESS_KEYS)
    low, high = given.get("min_lufs", -30.0), given.get("max_lufs", -9.0)
    checks = [
        check_number("programme.loudness.min_lufs", low, -70, 0),
        check_number("programme.loudness.max_lufs", high, -70, 0),
    ]
    problems += [problem for problem in checks if problem]
    if not problems and low >= high:
        problems.append(f"programme.loudness: min_lufs {low} is not below max_lufs {high}")
    return problems


def programme_problems(given: Any, own_name: Any) -> list[str]:
    """Every problem of a `programme:` field, each naming its field."""
    if not isinstance(given, dict):
        return [f"programme: {given!r} is not a mapping ({', '.join(sorted(PROGRAMME_KEYS))})"]
    problems = unknown_keys("programme.", given, PROGRAMME_KEYS)
    if "inputs" not in given:
        problems.append("programme.inputs: missing")
    else:
        problems += _inputs_problems(given["inputs"], own_name)
    problems += _silence_problems(given.get("silence", {}))
    problems += _loudness_problems(given.get("loudness", {}))
    hold = check_number("programme.hold_seconds", given.get("hold_seconds", 5.0), 0, 600)
    return problems + ([hold] if hold else [])


def parse_programme(given: dict) -> Programme:
    """A Programme from a field `programme_problems` found nothing wrong with."""
    silence, loudness = given.get("silence", {}), given.get("loudness", {})
    return Programme(
        inputs=tuple(_input(entry) for entry in given["inputs"]),
        silence=Silence(
            float(silence.get("threshold_db", -40.0)), float(silence.get("seconds", 10.0))
        ),
        hold_seconds=float(given.get("hold_seconds", 5.0)),
        loudness=LoudnessRange(
            float(loudness.get("min_lufs", -30.0)), float(loudness.get("max_lufs", -9.0))
        ),
    )


def preferred_inputs(programmes: dict[str, Programme], stored: dict[str, str]) -> dict[str, str]:
    """Each programme's preferred input as stored, when it is still one of its inputs (an
    edit of the radio file may have removed it: then the automatic order)."""
    return {
        name: stored[name]
        for name, programme in programmes.items()
        if stored.get(name) in programme.input_names
    }
