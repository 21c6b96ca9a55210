"""What a programme's Liquidsoap says of itself, as the agent reads it, and as its node's
status carries it through etcd."""

from __future__ import annotations

import json
from typing import Any

import pytest

from radioagent.model import node_status_from_json
from radioagent.programmes.state import (
    InputState,
    ProgrammeState,
    programme_reports_valid,
    programme_state_from_json,
)
from radioagent.validation import ValidationError
from tests.unit.builders import node_status


def answer(**changes: Any) -> dict[str, Any]:
    """The script's `programme.state` answer, decoded; `changes` override its fields."""
    values: dict[str, Any] = {
        "preferred": "",
        "on_air": "studio.mp3",
        "lufs": -23.0,
        "inputs": [
            {"name": "studio.mp3", "connected": True, "ready": True, "silent": False, "lufs": -21},
            {
                "name": "backup.mp3",
                "connected": False,
                "ready": False,
                "silent": True,
                "lufs": -120,
            },
        ],
    }
    values.update(changes)
    return values


def parsed(**changes: Any) -> ProgrammeState:
    return programme_state_from_json(json.dumps(answer(**changes)))


def refusal(text: str) -> str:
    with pytest.raises(ValidationError) as raised:
        programme_state_from_json(text)
    assert len(raised.value.problems) == 1
    return raised.value.problems[0]


def test_the_script_s_answer_is_read_input_by_input() -> None:
    state = parsed(preferred="backup.mp3")
    assert state == ProgrammeState(
        preferred="backup.mp3",
        on_air="studio.mp3",
        lufs=-23.0,
        inputs=(
            InputState("studio.mp3", connected=True, ready=True, silent=False, lufs=-21.0),
            InputState("backup.mp3", connected=False, ready=False, silent=True, lufs=-120.0),
        ),
    )
    assert not state.blank


def test_an_empty_on_air_is_the_safe_blank() -> None:
    state = parsed(on_air="")
    assert state.blank
    assert state.to_dict()["blank"] is True
    assert state.to_dict()["on_air"] is None


def test_to_dict_says_none_for_no_preference_and_keys_inputs_by_name() -> None:
    assert parsed().to_dict() == {
        "preferred": None,
        "on_air": "studio.mp3",
        "blank": False,
        "lufs": -23.0,
        "inputs": {
            "studio.mp3": {"connected": True, "ready": True, "silent": False, "lufs": -21.0},
            "backup.mp3": {"connected": False, "ready": False, "silent": True, "lufs": -120.0},
        },
    }
    assert parsed(preferred="backup.mp3").to_dict()["preferred"] == "backup.mp3"


def test_a_programme_without_inputs_reported_is_read() -> None:
    assert parsed(inputs=[]).inputs == ()


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (-23.456, -23.5),
        (-23.44, -23.4),
        (-500, -120.0),
        (-120.04, -120.0),
        (3.2, 0.0),
        (-0.04, -0.0),
        (-18, -18.0),
    ],
)
def test_loudness_is_clamped_to_the_floor_and_zero_and_rounded_to_a_tenth(
    given: float, read: float
) -> None:
    state = parsed(lufs=given)
    assert state.lufs == read
    assert isinstance(state.lufs, float)
    inputs = answer()["inputs"]
    inputs[0]["lufs"] = given
    assert parsed(inputs=inputs).inputs[0].lufs == read


def test_an_answer_that_is_not_json_is_refused() -> None:
    assert refusal("Unknown command").startswith("programme state: not JSON")


@pytest.mark.parametrize(
    "decoded",
    [
        [],
        {"preferred": "", "on_air": "", "lufs": -20},
        {"preferred": "", "on_air": "", "lufs": -20, "inputs": {}},
    ],
)
def test_an_answer_without_a_list_of_inputs_is_refused(decoded: Any) -> None:
    assert refusal(json.dumps(decoded)) == "programme state: not an object with inputs"


@pytest.mark.parametrize("field", ["preferred", "on_air"])
@pytest.mark.parametrize("value", [None, 1, ["a.mp3"]])
def test_preferred_and_on_air_must_be_strings(field: str, value: Any) -> None:
    problem = refusal(json.dumps(answer(**{field: value})))
    assert problem == "programme state: preferred and on_air must be strings"


@pytest.mark.parametrize("flag", ["connected", "ready", "silent"])
def test_an_input_missing_a_flag_is_refused(flag: str) -> None:
    inputs = answer()["inputs"]
    del inputs[1][flag]
    assert refusal(json.dumps(answer(inputs=inputs))) == (
        "programme state: input 'backup.mp3' lacks its flags"
    )


def test_an_input_flag_that_is_not_a_boolean_is_refused() -> None:
    inputs = answer()["inputs"]
    inputs[0]["silent"] = 0
    assert "lacks its flags" in refusal(json.dumps(answer(inputs=inputs)))


@pytest.mark.parametrize("entry", ["studio.mp3", {"connected": True}, {"name": 3}])
def test_an_input_without_a_name_is_refused(entry: Any) -> None:
    assert "is not an object with a name" in refusal(json.dumps(answer(inputs=[entry])))


@pytest.mark.parametrize("text", ["NaN", "true", "false", '"-20"', "null"])
def test_a_programme_loudness_that_is_not_a_number_is_refused(text: str) -> None:
    body = json.dumps(answer(lufs=0)).replace('"lufs": 0', f'"lufs": {text}', 1)
    assert refusal(body).startswith("programme state: loudness ")


@pytest.mark.parametrize("value", [float("nan"), True, None])
def test_an_input_loudness_that_is_not_a_number_is_refused(value: Any) -> None:
    inputs = answer()["inputs"]
    inputs[1]["lufs"] = value
    assert refusal(json.dumps(answer(inputs=inputs))).endswith("is not a number")


def test_an_input_without_loudness_is_refused() -> None:
    inputs = answer()["inputs"]
    del inputs[0]["lufs"]
    assert refusal(json.dumps(answer(inputs=inputs))) == (
        "programme state: loudness None is not a number"
    )


# The reports in a node's status


def test_reports_as_to_dict_gives_them_are_valid() -> None:
    assert programme_reports_valid({})
    assert programme_reports_valid(
        {"radio.mp3": parsed().to_dict(), "blank.mp3": parsed(on_air="", inputs=[]).to_dict()}
    )


def test_reports_from_a_newer_agent_may_carry_more_keys() -> None:
    report = parsed().to_dict()
    report["peak_db"] = -3.0
    report["inputs"]["studio.mp3"]["jitter_ms"] = 4
    assert programme_reports_valid({"radio.mp3": report})


def with_report_change(path: tuple[str, ...], value: Any) -> Any:
    """Valid reports but for the field at `path`: `value`, or deleted if `value` is `...`."""
    report = parsed().to_dict()
    inner = report
    for key in path[:-1]:
        inner = inner[key]
    if value is ...:
        del inner[path[-1]]
    else:
        inner[path[-1]] = value
    return {"radio.mp3": report}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("preferred",), 3),
        (("on_air",), ["studio.mp3"]),
        (("blank",), ...),
        (("blank",), "no"),
        (("lufs",), ...),
        (("lufs",), True),
        (("lufs",), "-23"),
        (("inputs",), ["studio.mp3"]),
        (("inputs", "studio.mp3"), "connected"),
        (("inputs", "studio.mp3", "connected"), ...),
        (("inputs", "studio.mp3", "silent"), 1),
        (("inputs", "studio.mp3", "lufs"), None),
        (("inputs", "studio.mp3", "lufs"), False),
    ],
)
def test_reports_of_the_wrong_shape_are_not_valid(path: tuple[str, ...], value: Any) -> None:
    assert not programme_reports_valid(with_report_change(path, value))


@pytest.mark.parametrize("value", [None, [], "radio.mp3", {"radio.mp3": None}, {"radio.mp3": []}])
def test_reports_that_are_not_a_mapping_of_reports_are_not_valid(value: Any) -> None:
    assert not programme_reports_valid(value)


def test_a_node_status_carrying_programme_reports_round_trips() -> None:
    status = node_status(
        "n1",
        transcoders=("radio.mp3",),
        programmes={"radio.mp3": parsed(preferred="backup.mp3").to_dict()},
    )
    read = node_status_from_json(status.to_json())
    assert read == status
    assert read.programmes["radio.mp3"]["preferred"] == "backup.mp3"


def test_a_node_status_without_programmes_has_none() -> None:
    decoded = json.loads(node_status("n1").to_json())
    del decoded["programmes"]
    assert node_status_from_json(json.dumps(decoded)).programmes == {}


@pytest.mark.parametrize(
    "programmes",
    [
        [],
        {"radio.mp3": {"on_air": "studio.mp3"}},
        {"radio.mp3": {**ProgrammeState("", "", -120.0, ()).to_dict(), "blank": "yes"}},
    ],
)
def test_a_node_status_with_bad_programme_reports_is_refused_naming_the_field(
    programmes: Any,
) -> None:
    decoded = json.loads(node_status("n1").to_json())
    decoded["programmes"] = programmes
    with pytest.raises(ValidationError) as raised:
        node_status_from_json(json.dumps(decoded))
    assert [problem.split(":")[:2] for problem in raised.value.problems] == [
        ["node status", " programmes"]
    ]
