"""Programme specs: the `programme:` field of a mount, what is accepted and what is refused
with a message naming the field; the rules between a programme and the other mounts."""

from __future__ import annotations

from typing import Any

import pytest

from radioagent.model import MountSpec, cross_mount_problems, mount_from_json, parse_mount
from radioagent.programmes.spec import (
    MAX_INPUTS,
    LoudnessRange,
    Programme,
    ProgrammeInput,
    Silence,
    parse_programme,
    preferred_inputs,
    programme_problems,
)
from radioagent.validation import ValidationError


def programme_mount(name: str = "radio.mp3", **programme: Any) -> dict[str, Any]:
    return {"name": name, "source_password": "pw-" + name, "programme": programme}


def problems_of(fields: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        parse_mount(fields)
    return raised.value.problems


def spec_problems(given: Any, own_name: str = "radio.mp3") -> list[str]:
    return programme_problems(given, own_name)


def test_inputs_given_as_names_or_mappings_parse_in_order_with_defaults() -> None:
    mount = parse_mount(
        programme_mount(inputs=["studio-a.mp3", {"mount": "override.mp3", "automatic": False}])
    )
    assert mount.programme == Programme(
        inputs=(ProgrammeInput("studio-a.mp3"), ProgrammeInput("override.mp3", automatic=False)),
        silence=Silence(-40.0, 10.0),
        hold_seconds=5.0,
        loudness=LoudnessRange(-30.0, -9.0),
    )
    assert mount.programme.input_names == ("studio-a.mp3", "override.mp3")
    assert mount.produced
    assert mount.made_from == ("studio-a.mp3", "override.mp3")


def test_a_mapping_input_without_automatic_is_automatic() -> None:
    programme = parse_programme({"inputs": [{"mount": "a.mp3"}]})
    assert programme.inputs == (ProgrammeInput("a.mp3", automatic=True),)


def test_given_silence_hold_and_loudness_are_kept_as_floats() -> None:
    mount = parse_mount(
        programme_mount(
            inputs=["a.mp3"],
            silence={"threshold_db": -50, "seconds": 5},
            hold_seconds=3,
            loudness={"min_lufs": -20, "max_lufs": -10},
        )
    )
    assert mount.programme is not None
    assert mount.programme.silence == Silence(-50.0, 5.0)
    assert isinstance(mount.programme.silence.threshold_db, float)
    assert mount.programme.hold_seconds == 3.0
    assert isinstance(mount.programme.hold_seconds, float)
    assert mount.programme.loudness == LoudnessRange(-20.0, -10.0)


def test_a_programme_round_trips_through_json() -> None:
    mount = parse_mount(
        programme_mount(
            inputs=["a.mp3", {"mount": "b.mp3", "automatic": False}, "c.mp3"],
            silence={"threshold_db": -55.5, "seconds": 20},
            hold_seconds=0,
            loudness={"min_lufs": -40, "max_lufs": -12.5},
        )
    )
    assert mount_from_json(mount.to_json()) == mount


def test_a_mount_without_programme_has_none_and_is_not_produced() -> None:
    mount = parse_mount({"name": "live.mp3", "source_password": "pw"})
    assert mount.programme is None
    assert not mount.produced
    assert mount.made_from == ()


def test_a_programme_listed_as_its_own_input_is_refused() -> None:
    problems = problems_of(programme_mount(inputs=["a.mp3", "radio.mp3"]))
    assert problems == ["programme.inputs[1]: 'radio.mp3' is the programme itself"]


def test_an_input_listed_twice_is_refused_once_whatever_its_spelling() -> None:
    problems = problems_of(
        programme_mount(inputs=["a.mp3", {"mount": "a.mp3", "automatic": True}, "b.mp3"])
    )
    assert problems == ["programme.inputs: 'a.mp3' is listed more than once"]


def test_a_programme_whose_inputs_are_all_manual_only_is_refused() -> None:
    problems = problems_of(
        programme_mount(
            inputs=[{"mount": "a.mp3", "automatic": False}, {"mount": "b.mp3", "automatic": False}]
        )
    )
    assert len(problems) == 1
    assert problems[0].startswith("programme.inputs: every input is manual-only")


def test_one_automatic_input_among_manual_ones_is_enough() -> None:
    assert (
        spec_problems(
            {"inputs": [{"mount": "a.mp3", "automatic": False}, {"mount": "b.mp3"}]},
        )
        == []
    )


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ([], "programme.inputs"),
        ("a.mp3", "programme.inputs"),
        (None, "programme.inputs"),
        (["x.mp3"] * (MAX_INPUTS + 1), "programme.inputs"),
        ([5], "programme.inputs[0]"),
        (["ok.mp3", "../etc"], "programme.inputs[1]"),
        (["ok.mp3", "_live"], "programme.inputs[1]"),
        ([{"automatic": True}], "programme.inputs[0].mount"),
        ([{"mount": "a.mp3", "automatic": "no"}], "programme.inputs[0].automatic"),
        ([{"mount": "a.mp3", "colour": "blue"}], "programme.inputs[0].colour"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(inputs: Any, field: str) -> None:
    problems = spec_problems({"inputs": inputs})
    assert [problem.split(": ")[0] for problem in problems] == [field]


def test_sixteen_inputs_are_allowed() -> None:
    names = [f"in{index}.mp3" for index in range(MAX_INPUTS)]
    assert spec_problems({"inputs": names}) == []


def test_a_programme_without_inputs_or_not_a_mapping_is_refused() -> None:
    assert spec_problems({}) == ["programme.inputs: missing"]
    assert [problem.split(":")[0] for problem in spec_problems(["a.mp3"])] == ["programme"]


@pytest.mark.parametrize(
    ("field", "given"),
    [
        ("silence", {"threshold_db": -91}),
        ("silence", {"threshold_db": -9}),
        ("silence", {"threshold_db": "loud"}),
        ("silence", {"seconds": 0.5}),
        ("silence", {"seconds": 601}),
        ("silence", {"seconds": True}),
        ("loudness", {"min_lufs": -71}),
        ("loudness", {"max_lufs": 1}),
        ("loudness", {"min_lufs": None}),
    ],
)
def test_silence_and_loudness_out_of_range_are_refused_naming_the_field(
    field: str, given: dict[str, Any]
) -> None:
    (key,) = given
    problems = spec_problems({"inputs": ["a.mp3"], field: given})
    assert [problem.split(":")[0] for problem in problems] == [f"programme.{field}.{key}"]


@pytest.mark.parametrize(
    ("field", "given"),
    [
        ("silence", {"threshold_db": -90, "seconds": 1}),
        ("silence", {"threshold_db": -10, "seconds": 600}),
        ("loudness", {"min_lufs": -70, "max_lufs": 0}),
        ("hold_seconds", 0),
        ("hold_seconds", 600),
    ],
)
def test_the_ends_of_each_range_are_accepted(field: str, given: Any) -> None:
    assert spec_problems({"inputs": ["a.mp3"], field: given}) == []


@pytest.mark.parametrize("hold", [-1, 600.5, "5", True, None])
def test_a_bad_hold_is_refused_naming_the_field(hold: Any) -> None:
    problems = spec_problems({"inputs": ["a.mp3"], "hold_seconds": hold})
    assert [problem.split(":")[0] for problem in problems] == ["programme.hold_seconds"]


@pytest.mark.parametrize(("low", "high"), [(-9, -30), (-20, -20)])
def test_a_loudness_range_whose_low_end_is_not_below_its_high_end_is_refused(
    low: float, high: float
) -> None:
    problems = spec_problems({"inputs": ["a.mp3"], "loudness": {"min_lufs": low, "max_lufs": high}})
    assert problems == [f"programme.loudness: min_lufs {low} is not below max_lufs {high}"]


def test_a_low_end_above_the_default_high_end_is_refused() -> None:
    problems = spec_problems({"inputs": ["a.mp3"], "loudness": {"min_lufs": -5}})
    assert problems == ["programme.loudness: min_lufs -5 is not below max_lufs -9.0"]


def test_silence_or_loudness_that_is_not_a_mapping_is_refused() -> None:
    problems = spec_problems({"inputs": ["a.mp3"], "silence": 10, "loudness": [-30, -9]})
    assert [problem.split(":")[0] for problem in problems] == [
        "programme.silence",
        "programme.loudness",
    ]


def test_unknown_keys_are_refused_at_every_level() -> None:
    problems = spec_problems(
        {
            "inputs": ["a.mp3"],
            "colour": "blue",
            "silence": {"threshold": -40},
            "loudness": {"target_lufs": -23},
        }
    )
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "programme.colour",
        "programme.loudness.target_lufs",
        "programme.silence.threshold",
    ]


def test_every_problem_of_a_programme_is_reported_at_once() -> None:
    problems = problems_of(
        programme_mount(
            inputs=["a.mp3", "a.mp3", "radio.mp3"],
            silence={"seconds": 0},
            hold_seconds=-1,
        )
    )
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "programme.hold_seconds",
        "programme.inputs",
        "programme.inputs[2]",
        "programme.silence.seconds",
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"transcode": {"parent": "a.mp3", "format": {"bitrate_kbps": 64}}}, "transcode"),
        ({"relay_url": "http://example.org/live.mp3"}, "relay_url"),
    ],
)
def test_a_programme_cannot_also_transcode_or_relay(extra: dict[str, Any], field: str) -> None:
    problems = problems_of({**programme_mount(inputs=["a.mp3"]), **extra})
    assert f"{field}: a programme is made from its inputs; it cannot also have {field}" in problems


def test_a_programme_in_a_format_its_encoder_cannot_make_is_refused() -> None:
    problems = problems_of(
        {**programme_mount(inputs=["a.mp3"]), "format": {"codec": "mp3", "bitrate_kbps": 100}}
    )
    assert len(problems) == 1
    assert problems[0].startswith("format.bitrate_kbps: MP3 at 44100 Hz takes one of")


def test_a_programme_may_carry_any_encodable_format() -> None:
    mount = parse_mount(
        {
            **programme_mount("radio.ogg", inputs=["a.mp3"]),
            "format": {"codec": "opus", "bitrate_kbps": 96, "samplerate": 48000},
        }
    )
    assert mount.format.codec == "opus"
    assert mount.format.bitrate_kbps == 96


def test_the_first_choice_is_the_preferred_input_else_the_first_automatic_one() -> None:
    programme = parse_programme(
        {"inputs": [{"mount": "manual.mp3", "automatic": False}, "a.mp3", "b.mp3"]}
    )
    assert programme.first_choice(None) == "a.mp3"
    assert programme.first_choice("") == "a.mp3"
    assert programme.first_choice("b.mp3") == "b.mp3"
    assert programme.first_choice("manual.mp3") == "manual.mp3"  # a manual one, when preferred
    assert programme.first_choice("gone.mp3") == "a.mp3"  # no longer an input


def test_stored_preferences_count_only_while_they_name_an_input() -> None:
    one = parse_programme({"inputs": ["a.mp3", "b.mp3"]})
    two = parse_programme({"inputs": ["c.mp3"]})
    stored = {"one.mp3": "b.mp3", "two.mp3": "removed.mp3", "deleted.mp3": "c.mp3"}
    assert preferred_inputs({"one.mp3": one, "two.mp3": two}, stored) == {"one.mp3": "b.mp3"}
    assert preferred_inputs({"one.mp3": one}, {}) == {}


# Between mounts


def mount(name: str, **fields: Any) -> MountSpec:
    return parse_mount({"name": name, "source_password": "pw-" + name, **fields})


def programme(name: str, *inputs: str) -> MountSpec:
    return parse_mount(programme_mount(name, inputs=list(inputs)))


def transcode(name: str, parent: str) -> MountSpec:
    return mount(name, transcode={"parent": parent, "format": {"bitrate_kbps": 64}})


def by_name(*mounts: MountSpec) -> dict[str, MountSpec]:
    return {each.name: each for each in mounts}


def test_a_programme_of_existing_mounts_has_no_problem() -> None:
    mounts = by_name(mount("a.mp3"), mount("b.mp3"), programme("radio.mp3", "a.mp3", "b.mp3"))
    assert cross_mount_problems(mounts) == []


def test_a_programme_input_that_is_not_a_mount_is_named() -> None:
    mounts = by_name(mount("a.mp3"), programme("radio.mp3", "a.mp3", "ghost.mp3"))
    assert cross_mount_problems(mounts) == [
        "radio.mp3: programme.inputs[1]: 'ghost.mp3' is not a mount"
    ]


def test_a_programme_may_take_another_programme_and_a_transcode_as_inputs() -> None:
    mounts = by_name(
        mount("a.mp3"),
        transcode("low.mp3", "a.mp3"),
        programme("inner.mp3", "a.mp3"),
        programme("outer.mp3", "inner.mp3", "low.mp3"),
    )
    assert cross_mount_problems(mounts) == []


def test_two_programmes_made_from_each_other_are_one_cycle() -> None:
    mounts = by_name(
        mount("a.mp3"), programme("p.mp3", "a.mp3", "q.mp3"), programme("q.mp3", "p.mp3")
    )
    assert cross_mount_problems(mounts) == [
        "p.mp3: programme.inputs: made from itself through p.mp3 <- q.mp3 <- p.mp3"
    ]


def test_a_programme_with_a_transcode_of_itself_as_input_is_a_cycle() -> None:
    mounts = by_name(
        mount("a.mp3"), programme("p.mp3", "a.mp3", "t.mp3"), transcode("t.mp3", "p.mp3")
    )
    assert cross_mount_problems(mounts) == [
        "p.mp3: programme.inputs: made from itself through p.mp3 <- t.mp3 <- p.mp3"
    ]


def test_a_longer_cycle_through_programmes_and_transcodes_is_found() -> None:
    mounts = by_name(
        programme("p.mp3", "a.mp3"),
        transcode("a.mp3", "b.mp3"),
        programme("b.mp3", "c.mp3"),
        transcode("c.mp3", "p.mp3"),
    )
    problems = cross_mount_problems(mounts)
    assert len(problems) == 1
    assert problems[0].startswith(
        "a.mp3: transcode.parent: made from itself through a.mp3 <- b.mp3 <- c.mp3"
    )


def test_a_mount_made_from_a_cycle_is_not_itself_reported() -> None:
    mounts = by_name(
        mount("a.mp3"),
        programme("p.mp3", "a.mp3", "q.mp3"),
        programme("q.mp3", "p.mp3"),
        programme("outside.mp3", "p.mp3"),
    )
    problems = cross_mount_problems(mounts)
    assert len(problems) == 1
    assert "outside.mp3" not in problems[0]


def test_a_transcoded_mount_may_take_a_programme_as_its_parent() -> None:
    mounts = by_name(
        mount("a.mp3"), programme("radio.mp3", "a.mp3"), transcode("radio-low.mp3", "radio.mp3")
    )
    assert cross_mount_problems(mounts) == []
