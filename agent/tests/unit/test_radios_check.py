"""The preflight check of a site's radio files: the rules of `radioctl apply`, no etcd."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from radioagent.radios_check import main, radio_files_problems


def radio_file(directory: Path, radio: str, mounts: list[dict]) -> str:
    path = directory / f"{radio}.yml"
    path.write_text(yaml.safe_dump({"radio": radio, "mounts": mounts}))
    return str(path)


def test_valid_files_pass_and_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    one = radio_file(
        tmp_path,
        "one",
        [
            {"name": "live.mp3"},
            {
                "name": "low.mp3",
                "transcode": {"parent": "live.mp3", "format": {"bitrate_kbps": 48}},
            },
        ],
    )
    two = radio_file(tmp_path, "two", [{"name": "two.ogg", "format": {"codec": "vorbis"}}])
    assert main([one, two]) == 0
    assert capsys.readouterr().out == "2 radio files, 3 mounts: valid\n"


def test_every_problem_is_named_with_its_file(tmp_path: Path) -> None:
    one = radio_file(tmp_path, "one", [{"name": "live.mp3"}])
    two = radio_file(
        tmp_path,
        "two",
        [
            {"name": "live.mp3"},
            {"name": "../etc/passwd"},
            {"name": "aac.aac", "format": {"codec": "aac", "bitrate_kbps": 5000}},
        ],
    )
    problems, _ = radio_files_problems([one, two])
    assert len(problems) == 3
    assert all(problem.startswith(f"{two}: ") for problem in problems)
    assert "belongs to radio 'one'" in problems[0]
    assert "'../etc/passwd' is not valid" in problems[1]
    assert "bitrate_kbps" in problems[2]


def test_unreadable_and_malformed_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("radio: [unclosed\n")
    assert main([str(broken), str(tmp_path / "missing.yml")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith(f"{broken}: not valid YAML at line")
    assert errors[1].startswith(f"{tmp_path / 'missing.yml'}: cannot read")
    assert main([]) == 2
