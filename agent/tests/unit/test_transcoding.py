"""Transcoders: who claims what, encoders for Debian's Liquidsoap, the rendered script."""

from __future__ import annotations

from typing import Any

import pytest

from radioagent.cli.output import change_lines, status_text
from radioagent.coordination.state import ClusterState
from radioagent.model import AudioFormat, MountSpec, encodable_problems, parse_mount
from radioagent.radios import MountChange
from radioagent.transcoding.assignment import first_taker, plan_transcoders
from radioagent.transcoding.script import transcoder_job
from radioagent.validation import ValidationError
from tests.harness.icecast import REPO_DIR
from tests.unit.builders import node_status

MP3 = AudioFormat()  # the parent live.mp3 carries MP3


def mount(name: str, parent: str | None = None, codec: str = "opus") -> MountSpec:
    given: dict = {"name": name, "source_password": "pw-" + name}
    if parent is not None:
        given["transcode"] = {
            "parent": parent,
            "format": {"codec": codec, "bitrate_kbps": 64, "samplerate": 48000},
        }
    return parse_mount(given)


MOUNTS = {
    "live.mp3": mount("live.mp3"),
    "a.opus": mount("a.opus", "live.mp3"),
    "b.opus": mount("b.opus", "live.mp3"),
}
NODES = {name: node_status(name) for name in ("n1", "n2", "n3")}


def claims_by_node(
    mounts: dict[str, MountSpec], claims: dict[str, str], **options: Any
) -> dict[str, str | None]:
    """What each of NODES would claim now."""
    return {
        me: plan_transcoders(mounts, claims, NODES, (), me, me_eligible=True, **options).claim
        for me in NODES
    }


def test_each_free_transcoder_goes_to_one_node_at_once_and_to_any_once_overdue() -> None:
    at_once = claims_by_node(MOUNTS, {})
    assert sorted(claim for claim in at_once.values() if claim) == ["a.opus", "b.opus"]
    # A first taker that is slow or gone holds nothing up for longer than a cycle.
    late = claims_by_node(MOUNTS, {}, overdue=("a.opus", "b.opus"))
    assert all(late.values())
    busy = plan_transcoders(
        MOUNTS, {"a.opus": "n1"}, NODES, (), "n1", me_eligible=True, overdue=("b.opus",)
    )
    assert busy.run == ("a.opus",)
    assert busy.claim is None  # n2 and n3 hold none
    rest = claims_by_node(MOUNTS, {"a.opus": "n1"})
    assert rest["n1"] is None
    assert [claim for claim in rest.values() if claim] == ["b.opus"]


def test_free_mounts_prefer_different_nodes_and_every_node_agrees_on_which() -> None:
    held = dict.fromkeys(NODES, 0)
    firsts = [first_taker(f"m{number}.opus", NODES, held) for number in range(30)]
    assert set(firsts) == set(NODES)  # spread, not all on the first name
    assert firsts == [first_taker(f"m{number}.opus", reversed(NODES), held) for number in range(30)]
    busiest = str(firsts[0])
    assert first_taker("m0.opus", NODES, {**held, busiest: 1}) != busiest  # fewest first


def test_down_draining_or_cut_off_nodes_do_not_count_or_claim() -> None:
    nodes = {
        **NODES,
        "n2": node_status("n2", icecast_up=False),
        "n3": node_status("n3", draining=True),
    }
    plan = plan_transcoders(MOUNTS, {"a.opus": "n1"}, nodes, (), "n1", me_eligible=True)
    assert plan.claim == "b.opus"  # the only eligible node
    assert plan_transcoders(MOUNTS, {}, NODES, ("n1",), "n1", me_eligible=True).claim is None
    assert plan_transcoders(MOUNTS, {}, NODES, (), "n1", me_eligible=False).claim is None


def test_claims_on_mounts_no_longer_transcoded_are_released() -> None:
    plan = plan_transcoders(
        {"live.mp3": MOUNTS["live.mp3"]}, {"a.opus": "n1"}, NODES, (), "n1", me_eligible=True
    )
    assert plan.release == ("a.opus",)
    assert plan.run == ()


def test_a_claim_whose_liquidsoap_keeps_failing_here_is_given_up() -> None:
    claims = {"a.opus": "n1", "b.opus": "n2"}
    plan = plan_transcoders(MOUNTS, claims, NODES, (), "n1", me_eligible=True, failing=("a.opus",))
    assert plan.give_up == ("a.opus",)
    assert plan.run == ()
    assert plan.release == ()  # a release is for mounts no longer transcoded
    assert plan.claim is None  # nor does it take the other free one meanwhile: b is held


def test_a_node_does_not_claim_what_it_gave_up_lately() -> None:
    plan = plan_transcoders(
        MOUNTS, {}, NODES, (), "n1", me_eligible=True, avoiding=("a.opus",), overdue=MOUNTS
    )
    assert plan.claim == "b.opus"
    stuck = plan_transcoders(  # its release failed last time: it gives it up again
        MOUNTS, {"a.opus": "n1"}, NODES, (), "n1", me_eligible=True, avoiding=("a.opus",)
    )
    assert stuck.give_up == ("a.opus",)
    assert stuck.run == ()


def test_a_mount_given_up_elsewhere_goes_to_a_node_that_takes_it_even_holding_more() -> None:
    """n1 gave a.opus up and holds nothing now; n2 holds b.opus. Without n1 in the spread
    rule for a.opus, n2 or n3 claims it; n1's smaller count does not block them."""
    nodes = {**NODES, "n1": node_status("n1", given_up=("a.opus",))}
    claims = {"b.opus": "n2"}
    assert plan_transcoders(MOUNTS, claims, nodes, (), "n3", me_eligible=True).claim == "a.opus"
    taken = {"b.opus": "n2", "c.opus": "n3"}
    more = {**MOUNTS, "c.opus": mount("c.opus", "live.mp3")}
    late = ("a.opus",)  # n3 may be its first taker: n2 races once it is overdue
    assert plan_transcoders(more, taken, nodes, (), "n2", me_eligible=True, overdue=late).claim == (
        "a.opus"
    )
    # Without the give-up, n1 (holding none) is the one to claim it, not n2.
    assert (
        plan_transcoders(more, taken, NODES, (), "n2", me_eligible=True, overdue=late).claim is None
    )


def test_what_lame_or_the_codecs_cannot_encode_is_named() -> None:
    assert encodable_problems("f", AudioFormat("mp3", 128, 44100, 2)) == []
    assert (
        "f.bitrate_kbps: MP3 at 22050 Hz"
        in encodable_problems("f", AudioFormat("mp3", 192, 22050, 2))[0]
    )
    assert "opus takes 6-510" in encodable_problems("f", AudioFormat("opus", 512, 48000, 2))[0]


def test_bad_transcode_specs_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"transcode\.format\.bitrate_kbps: MP3 at 22050"):
        parse_mount(
            {
                "name": "low.mp3",
                "source_password": "x",
                "transcode": {
                    "parent": "live.mp3",
                    "format": {"codec": "mp3", "bitrate_kbps": 192, "samplerate": 22050},
                },
            }
        )
    with pytest.raises(ValidationError, match="format: a transcoded mount"):
        parse_mount(
            {
                "name": "low.mp3",
                "source_password": "x",
                "format": {"codec": "vorbis"},
                "transcode": {"parent": "live.mp3", "format": {"codec": "mp3"}},
            }
        )


def test_the_format_of_a_transcoded_mount_is_its_transcode_format() -> None:
    spec = MOUNTS["a.opus"]
    assert spec.transcode is not None
    assert spec.format == spec.transcode.format


def test_the_script_pulls_from_and_pushes_to_the_leader_without_the_password() -> None:
    leader = node_status("n2", address="192.0.2.7", icecast_port=8123)
    job = transcoder_job(str(REPO_DIR / "templates"), MOUNTS["a.opus"], leader, MP3)
    assert '"http://192.0.2.7:8123/_live/live.mp3"' in job.script
    assert 'mount="/_live/a.opus"' in job.script
    assert "%ogg(%opus(samplerate=48000, channels=2, bitrate=64))" in job.script
    assert "pw-a.opus" not in job.script
    assert job.password == "pw-a.opus"


def test_the_parent_s_container_is_named_to_ffmpeg_or_else_probed() -> None:
    leader = node_status("n2", address="192.0.2.7", icecast_port=8123)
    templates = str(REPO_DIR / "templates")
    named = transcoder_job(templates, MOUNTS["a.opus"], leader, AudioFormat(codec="vorbis"))
    assert 'format="ogg",' in named.script
    probed = transcoder_job(templates, MOUNTS["a.opus"], leader, None)
    assert "format=" not in probed.script.split("parent = input.http(")[1].split(")")[0]


def test_an_ipv6_leader_is_bracketed_in_the_input_url_and_bare_as_the_output_host() -> None:
    leader = node_status("n2", address="::1", icecast_port=8123)
    job = transcoder_job(str(REPO_DIR / "templates"), MOUNTS["a.opus"], leader, MP3)
    # Liquidsoap's input.http needs the URL form; output.icecast connects to a host.
    assert '"http://[::1]:8123/_live/live.mp3"' in job.script
    assert 'host="::1"' in job.script


def test_radioctl_status_shows_where_transcoders_run_and_dead_air() -> None:
    state = ClusterState(
        revision=1,
        leader=None,
        nodes={
            "n1": node_status("n1", transcoders=("a.opus", "b.opus"), silent_mounts=("b.opus",)),
            "n2": node_status("n2"),
        },
        mounts=MOUNTS,
    )
    lines = status_text(state).splitlines()
    assert "TRANSCODERS" in lines[2]
    assert "a.opus, b.opus (SILENT)" in next(line for line in lines if line.startswith("n1"))
    assert next(line for line in lines if line.startswith("n2")).split()[7] == "-"


def test_radioctl_status_lists_known_nodes_without_a_status_as_down() -> None:
    state = ClusterState(
        revision=1,
        leader=None,
        nodes={"n1": node_status("n1")},
        mounts=MOUNTS,
        known={"n1": None, "n2": 1_700_000_000.0, "n3": None},
    )
    lines = status_text(state).splitlines()
    assert "n2: DOWN since 2023-11-14 22:13:20 UTC" in lines
    assert "n3: DOWN since a moment ago" in lines
    assert not any(line.startswith("n1: DOWN") for line in lines)


def test_a_created_transcode_names_its_parent_and_never_shows_its_password() -> None:
    studio = parse_mount({"name": "live.mp3", "source_password": "studio-secret"})
    low = parse_mount(
        {
            "name": "low.mp3",
            "source_password": "liquidsoap-secret",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 48}},
        }
    )
    changes = [
        MountChange("create", "live.mp3", None, studio, password_generated=True),
        MountChange("create", "low.mp3", None, low, password_generated=True),
    ]
    assert change_lines("demo", changes, dry_run=False) == [
        "created /live.mp3 (source password, shown once: studio-secret)",
        "created /low.mp3 (made in the cluster from /live.mp3)",
    ]
    assert change_lines("demo", changes, dry_run=True) == [
        "would create /live.mp3",
        "would create /low.mp3 (made in the cluster from /live.mp3)",
    ]
