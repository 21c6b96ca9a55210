"""Programmes in radio files: `radioctl apply`'s plan and the preflight check of a site's
files (no etcd)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from radioagent.model import MountSpec, parse_mount
from radioagent.radios import parse_radio_file, plan_apply
from radioagent.radios_check import radio_files_problems
from radioagent.validation import ValidationError


def generated_password() -> str:
    return "generated-pw"


def radio(mounts: list[dict[str, Any]]) -> Any:
    return parse_radio_file({"radio": "one", "mounts": mounts})


def test_applying_a_file_with_a_programme_creates_it() -> None:
    changes = plan_apply(
        radio(
            [
                {"name": "studio.mp3"},
                {"name": "backup.mp3"},
                {
                    "name": "radio.mp3",
                    "programme": {
                        "inputs": ["studio.mp3", {"mount": "backup.mp3", "automatic": False}]
                    },
                },
            ]
        ),
        {},
        prune=False,
        new_password=generated_password,
    )
    assert [(change.action, change.name) for change in changes] == [
        ("create", "studio.mp3"),
        ("create", "backup.mp3"),
        ("create", "radio.mp3"),
    ]
    created = changes[2].after
    assert created is not None
    assert created.programme is not None
    assert created.programme.input_names == ("studio.mp3", "backup.mp3")
    assert created.radio == "one"
    assert changes[2].password_generated


def test_a_programme_may_take_inputs_from_mounts_already_in_etcd() -> None:
    existing = {"studio.mp3": parse_mount({"name": "studio.mp3", "source_password": "pw"})}
    changes = plan_apply(
        radio([{"name": "radio.mp3", "programme": {"inputs": ["studio.mp3"]}}]),
        existing,
        prune=False,
        new_password=generated_password,
    )
    assert [(change.action, change.name) for change in changes] == [("create", "radio.mp3")]


def test_an_invalid_programme_is_refused_naming_the_mount_and_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        plan_apply(
            radio(
                [
                    {"name": "studio.mp3"},
                    {"name": "radio.mp3", "programme": {"inputs": ["studio.mp3"], "hold": 5}},
                ]
            ),
            {},
            prune=False,
            new_password=generated_password,
        )
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith("mounts[1] (radio.mp3): programme.hold: unknown key")


def test_a_programme_whose_input_is_missing_is_refused_by_apply() -> None:
    with pytest.raises(ValidationError) as raised:
        plan_apply(
            radio([{"name": "radio.mp3", "programme": {"inputs": ["ghost.mp3"]}}]),
            {},
            prune=False,
            new_password=generated_password,
        )
    assert raised.value.problems == ["radio.mp3: programme.inputs[0]: 'ghost.mp3' is not a mount"]


def test_changing_a_programme_s_inputs_is_an_update_of_its_programme_fields() -> None:
    before = plan_apply(
        radio(
            [
                {"name": "a.mp3"},
                {"name": "b.mp3"},
                {"name": "radio.mp3", "programme": {"inputs": ["a.mp3", "b.mp3"]}},
            ]
        ),
        {},
        prune=False,
        new_password=generated_password,
    )
    existing: dict[str, MountSpec] = {
        change.name: change.after for change in before if change.after is not None
    }
    changes = plan_apply(
        radio(
            [
                {"name": "a.mp3"},
                {"name": "b.mp3"},
                {
                    "name": "radio.mp3",
                    "programme": {"inputs": ["b.mp3", "a.mp3"], "hold_seconds": 10},
                },
            ]
        ),
        existing,
        prune=False,
        new_password=generated_password,
    )
    update = next(change for change in changes if change.name == "radio.mp3")
    assert update.action == "update"
    assert update.changed_fields == ("programme.hold_seconds", "programme.inputs")
    assert [change.action for change in changes if change.name != "radio.mp3"] == [
        "unchanged",
        "unchanged",
    ]


# The preflight check, on files


def radio_file(directory: Path, mounts: list[dict[str, Any]]) -> str:
    path = directory / "one.yml"
    path.write_text(yaml.safe_dump({"radio": "one", "mounts": mounts}))
    return str(path)


def file_problems(directory: Path, mounts: list[dict[str, Any]]) -> list[str]:
    """The problems, each checked to start with its file and returned without it (the
    temporary directory's name holds the test's)."""
    path = radio_file(directory, mounts)
    problems, _ = radio_files_problems([path])
    assert all(problem.startswith(f"{path}: ") for problem in problems)
    return [problem.removeprefix(f"{path}: ") for problem in problems]


def test_a_file_with_a_valid_programme_passes_and_counts_it(tmp_path: Path) -> None:
    path = radio_file(
        tmp_path,
        [
            {"name": "studio.mp3"},
            {"name": "radio.mp3", "programme": {"inputs": ["studio.mp3"]}},
            {
                "name": "radio-low.mp3",
                "transcode": {"parent": "radio.mp3", "format": {"bitrate_kbps": 48}},
            },
        ],
    )
    assert radio_files_problems([path]) == ([], 3)


def test_a_programme_input_missing_from_the_files_is_named(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        [
            {"name": "studio.mp3"},
            {"name": "radio.mp3", "programme": {"inputs": ["studio.mp3", "ghost.mp3"]}},
        ],
    )
    assert problems == ["radio.mp3: programme.inputs[1]: 'ghost.mp3' is not a mount"]


def test_a_programme_input_in_an_earlier_file_counts(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    studios = radio_file(first, [{"name": "studio.mp3"}])
    programmes = tmp_path / "programmes.yml"
    programmes.write_text(
        yaml.safe_dump(
            {
                "radio": "two",
                "mounts": [{"name": "radio.mp3", "programme": {"inputs": ["studio.mp3"]}}],
            }
        )
    )
    assert radio_files_problems([studios, str(programmes)]) == ([], 2)


def test_a_programme_listed_as_its_own_input_is_named_with_its_field(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        [
            {"name": "studio.mp3"},
            {"name": "radio.mp3", "programme": {"inputs": ["studio.mp3", "radio.mp3"]}},
        ],
    )
    assert problems == [
        "mounts[1] (radio.mp3): programme.inputs[1]: 'radio.mp3' is the programme itself"
    ]


def test_a_cycle_between_two_programmes_is_named_with_both(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        [
            {"name": "studio.mp3"},
            {"name": "a.mp3", "programme": {"inputs": ["studio.mp3", "b.mp3"]}},
            {"name": "b.mp3", "programme": {"inputs": ["a.mp3"]}},
        ],
    )
    assert problems == ["a.mp3: programme.inputs: made from itself through a.mp3 <- b.mp3 <- a.mp3"]


def test_a_cycle_between_two_programmes_names_the_field(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        [
            {"name": "studio.mp3"},
            {"name": "a.mp3", "programme": {"inputs": ["studio.mp3", "b.mp3"]}},
            {"name": "b.mp3", "programme": {"inputs": ["a.mp3"]}},
        ],
    )
    assert len(problems) == 1
    assert "programme.inputs" in problems[0]


def test_a_manual_only_input_as_the_only_input_is_named_with_its_field(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        [
            {"name": "studio.mp3"},
            {
                "name": "radio.mp3",
                "programme": {"inputs": [{"mount": "studio.mp3", "automatic": False}]},
            },
        ],
    )
    assert len(problems) == 1
    assert problems[0].startswith("mounts[1] (radio.mp3): programme.inputs: every input is manual")
