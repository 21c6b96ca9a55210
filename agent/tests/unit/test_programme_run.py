"""Running a programme: claimed like a transcoder, and its rendered Liquidsoap script."""

from __future__ import annotations

from pathlib import Path

import pytest

from radioagent.model import MountSpec, parse_mount
from radioagent.programmes.script import (
    liquidsoap_float,
    preference_path,
    programme_job,
    socket_directory,
    socket_path,
)
from radioagent.transcoding.assignment import plan_transcoders
from tests.unit.builders import node_status

RUN_DIR = Path("/run/radio-agent")
PROGRAMME = parse_mount(
    {
        "name": "radio.mp3",
        "source_password": "programme-secret-1",
        "source_username": "producer",
        "format": {"codec": "mp3", "bitrate_kbps": 192},
        "programme": {
            "inputs": [
                "studio.mp3",
                {"mount": "override.mp3", "automatic": False},
                "automation.mp3",
            ],
            "silence": {"threshold_db": -45, "seconds": 8},
            "hold_seconds": 7,
        },
    }
)
STUDIO = parse_mount({"name": "studio.mp3", "source_password": "studio-secret"})
# The programme's inputs: the override studio sends Ogg Vorbis.
INPUTS = {
    "studio.mp3": STUDIO,
    "override.mp3": parse_mount(
        {"name": "override.mp3", "source_password": "pw", "format": {"codec": "vorbis"}}
    ),
    "automation.mp3": parse_mount({"name": "automation.mp3", "source_password": "pw"}),
}
NODES = {name: node_status(name) for name in ("n1", "n2")}
LEADER = node_status("n1", role="leader", address="192.0.2.7", icecast_port=8123)


def test_a_free_programme_is_claimed_like_a_transcoded_mount() -> None:
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    claims = {
        me: plan_transcoders(mounts, {}, NODES, (), me, me_eligible=True).claim for me in NODES
    }
    assert sorted(claims.values(), key=str) == [None, "radio.mp3"]  # one first taker
    overdue = plan_transcoders(mounts, {}, NODES, (), "n1", me_eligible=True, overdue=mounts)
    assert overdue.claim == "radio.mp3"
    assert plan_transcoders(mounts, {}, NODES, (), "n1", me_eligible=False).claim is None


THREE = {name: node_status(name) for name in ("n1", "n2", "n3")}


def standbys(
    mounts: dict[str, MountSpec],
    claims: dict[str, str],
    nodes: dict,
    draining: tuple[str, ...] = (),
) -> list[str]:
    """The nodes whose plans run a standby of radio.mp3; each knows what it gave up from
    its own records (its status says the same to the others)."""
    return [
        me
        for me in nodes
        if "radio.mp3"
        in plan_transcoders(
            mounts, claims, nodes, draining, me, me_eligible=True, avoiding=nodes[me].given_up
        ).standby
    ]


def test_one_other_node_keeps_a_standby_and_it_is_the_one_that_takes_over() -> None:
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    (standby,) = standbys(mounts, {"radio.mp3": "n1"}, THREE)
    assert standby != "n1"
    # n1's lease expires: its status and its claim go with it. At once, before the
    # mount is overdue, only the standby claims it.
    survivors = {name: status for name, status in THREE.items() if name != "n1"}
    takers = [
        me
        for me in survivors
        if plan_transcoders(mounts, {}, survivors, (), me, me_eligible=True).claim == "radio.mp3"
    ]
    assert takers == [standby]
    # Its standby keeps running while it claims: a lost race would cost no start.
    assert plan_transcoders(mounts, {}, survivors, (), standby, me_eligible=True).standby == (
        "radio.mp3",
    )


def test_no_standby_on_a_node_that_gave_the_programme_up_or_drains_nor_for_transcoders() -> None:
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    (standby,) = standbys(mounts, {"radio.mp3": "n1"}, THREE)
    gave_up = {**THREE, standby: node_status(standby, given_up=("radio.mp3",))}
    (instead,) = standbys(mounts, {"radio.mp3": "n1"}, gave_up)
    assert instead not in ("n1", standby)
    (instead,) = standbys(mounts, {"radio.mp3": "n1"}, THREE, draining=(standby,))
    assert instead not in ("n1", standby)
    low = parse_mount(
        {
            "name": "low.mp3",
            "source_password": "pw",
            "transcode": {"parent": "studio.mp3", "format": {"bitrate_kbps": 64}},
        }
    )
    transcoded = {"studio.mp3": STUDIO, "low.mp3": low}
    for me in THREE:
        plan = plan_transcoders(transcoded, {"low.mp3": "n1"}, THREE, (), me, me_eligible=True)
        assert plan.standby == ()


def test_an_owned_programme_is_run_and_not_released() -> None:
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    plan = plan_transcoders(mounts, {"radio.mp3": "n1"}, NODES, (), "n1", me_eligible=True)
    assert plan.run == ("radio.mp3",)
    assert plan.release == ()
    assert plan.claim is None


def test_a_programme_counts_in_what_a_node_holds() -> None:
    low = parse_mount(
        {
            "name": "low.mp3",
            "source_password": "pw",
            "transcode": {"parent": "studio.mp3", "format": {"bitrate_kbps": 64}},
        }
    )
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME, "low.mp3": low}
    claims = {"radio.mp3": "n1"}
    assert plan_transcoders(mounts, claims, NODES, (), "n1", me_eligible=True).claim is None
    assert plan_transcoders(mounts, claims, NODES, (), "n2", me_eligible=True).claim == "low.mp3"


def test_a_claim_on_a_mount_no_longer_a_programme_is_released() -> None:
    mounts = {
        "studio.mp3": STUDIO,
        "radio.mp3": parse_mount({"name": "radio.mp3", "source_password": "pw"}),
    }
    plan = plan_transcoders(mounts, {"radio.mp3": "n1"}, NODES, (), "n1", me_eligible=True)
    assert plan.release == ("radio.mp3",)
    assert plan.run == ()


def job_script(templates_dir: str, mount: MountSpec = PROGRAMME) -> str:
    return programme_job(templates_dir, mount, LEADER, RUN_DIR, INPUTS).script


def test_the_job_is_a_programme_s_with_its_own_credentials(templates_dir: str) -> None:
    job = programme_job(templates_dir, PROGRAMME, LEADER, RUN_DIR, INPUTS)
    assert job.programme is True
    assert job.mount == "radio.mp3"
    assert job.username == "producer"
    assert job.password == "programme-secret-1"


def test_the_script_pulls_each_input_from_the_leader_s_live_mount(templates_dir: str) -> None:
    script = job_script(templates_dir)
    for name in ("studio.mp3", "override.mp3", "automation.mp3"):
        assert f'"http://192.0.2.7:8123/_live/{name}"' in script


def test_the_script_marks_manual_inputs_false_and_keeps_their_order(templates_dir: str) -> None:
    script = job_script(templates_dir)
    lines = [line.strip() for line in script.splitlines() if "make_input(" in line]
    assert lines[1:] == [
        'make_input("studio.mp3", true, "http://192.0.2.7:8123/_live/studio.mp3", "mp3"),',
        'make_input("override.mp3", false, "http://192.0.2.7:8123/_live/override.mp3", "ogg"),',
        'make_input("automation.mp3", true, "http://192.0.2.7:8123/_live/automation.mp3", "mp3")',
    ]


def test_an_input_whose_format_is_unknown_is_probed(templates_dir: str) -> None:
    """An input whose record is unreadable has no format to name: ffmpeg probes it."""
    known = {name: each for name, each in INPUTS.items() if name != "studio.mp3"}
    script = programme_job(templates_dir, PROGRAMME, LEADER, RUN_DIR, known).script
    assert 'make_input("studio.mp3", true, "http://192.0.2.7:8123/_live/studio.mp3", "")' in script


def test_the_script_pushes_to_the_leader_s_live_mount_of_the_programme(
    templates_dir: str,
) -> None:
    script = job_script(templates_dir)
    assert 'host="192.0.2.7"' in script
    assert "port=8123," in script
    assert 'mount="/_live/radio.mp3"' in script
    assert 'user="producer"' in script
    assert "%mp3(bitrate=192, samplerate=44100, stereo=true)" in script
    assert 'format="audio/mpeg"' in script


def test_the_script_holds_no_password(templates_dir: str) -> None:
    script = job_script(templates_dir)
    assert "programme-secret-1" not in script
    assert 'password=getenv("RADIO_SOURCE_PASSWORD")' in script


def test_the_script_uses_the_socket_and_preference_file_under_the_run_dir(
    templates_dir: str,
) -> None:
    script = job_script(templates_dir)
    socket = socket_path(RUN_DIR, "radio.mp3")
    assert socket.parent == socket_directory(RUN_DIR) == RUN_DIR / "programme-sockets"
    assert preference_path(RUN_DIR, "radio.mp3") == RUN_DIR / "programme-radio.mp3.preferred"
    assert f'settings.server.socket.path.set("{socket}")' in script
    assert 'path = "/run/radio-agent/programme-radio.mp3.preferred"' in script


def test_the_script_carries_the_silence_and_hold_as_floats(templates_dir: str) -> None:
    script = job_script(templates_dir)
    assert "hold_seconds = 7.000\n" in script
    assert "max_blank=8.000," in script
    assert "threshold=-45.000," in script


def test_a_socket_path_stays_short_whatever_the_mount_name() -> None:
    """A Unix socket's path has at most 107 bytes; a mount's name up to 63."""
    long_name = "a" * 63
    assert socket_path(RUN_DIR, long_name) != socket_path(RUN_DIR, "a" * 62)
    assert len(str(socket_path(Path("/var/lib/a-rather-long/run/dir"), long_name))) < 107


def test_a_tiny_hold_renders_as_a_literal_liquidsoap_reads() -> None:
    """Python writes 1e-05; Liquidsoap has no exponent notation."""
    assert liquidsoap_float(0.00001) == "0.000"
    assert liquidsoap_float(600) == "600.000"


def test_an_ipv6_leader_is_bracketed_in_input_urls_and_bare_as_the_output_host(
    templates_dir: str,
) -> None:
    leader = node_status("n1", address="2001:db8::7", icecast_port=8123)
    script = programme_job(templates_dir, PROGRAMME, leader, RUN_DIR, INPUTS).script
    assert '"http://[2001:db8::7]:8123/_live/studio.mp3"' in script
    assert 'host="2001:db8::7"' in script


def test_a_mount_that_is_not_a_programme_has_no_programme_job(templates_dir: str) -> None:
    with pytest.raises(ValueError, match="not a programme"):
        programme_job(templates_dir, STUDIO, LEADER, RUN_DIR, INPUTS)


def test_programmes_leave_the_leader_out_while_another_node_can_take_them() -> None:
    """A leader's death restarts every programme: an owner there would waste its
    standby. Alone, or with the other node as owner, the leader still takes its part."""
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    overdue = ("radio.mp3",)
    for leader in THREE:
        plan = plan_transcoders(
            mounts, {}, THREE, (), leader, me_eligible=True, overdue=overdue, leader=leader
        )
        assert plan.claim is None
        owned = plan_transcoders(
            mounts,
            {"radio.mp3": next(name for name in THREE if name != leader)},
            THREE,
            (),
            leader,
            me_eligible=True,
            leader=leader,
        )
        assert owned.standby == ()
    two = {name: node_status(name) for name in ("n1", "n2")}
    assert plan_transcoders(mounts, {}, two, (), "n1", me_eligible=True, leader="n2").claim == (
        "radio.mp3"
    )
    # The other node owns it: the leader keeps the standby (nobody else can).
    kept = plan_transcoders(
        mounts, {"radio.mp3": "n1"}, two, (), "n2", me_eligible=True, leader="n2"
    )
    assert kept.standby == ("radio.mp3",)
    alone = {"n2": node_status("n2")}
    assert (
        plan_transcoders(mounts, {}, alone, (), "n2", me_eligible=True, leader="n2").claim
        == "radio.mp3"
    )


SECOND = parse_mount(
    {
        "name": "second.mp3",
        "source_password": "pw",
        "programme": {"inputs": ["studio.mp3"]},
    }
)
# n1 led; n4 leads now, and programmes leave it out while n2 or n3 can take them.
LEADING = {"n4": node_status("n4", role="leader")}


def claims_of(mounts: dict[str, MountSpec], claims: dict[str, str], nodes: dict) -> dict:
    """What each node's plan claims now (not overdue: first takers only) under n4."""
    return {
        me: plan_transcoders(mounts, claims, nodes, (), me, me_eligible=True, leader="n4").claim
        for me in nodes
    }


def test_the_node_standing_by_takes_each_programme_freed_by_one_death() -> None:
    """n1 owned both; n2 stands by for both. It claims one, then (holding more than n3)
    still the other: its standby goes on air instead of a cold start on n3."""
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME, "second.mp3": SECOND}
    survivors = {
        "n2": node_status("n2", standbys=("radio.mp3", "second.mp3")),
        "n3": node_status("n3"),
        **LEADING,
    }
    assert claims_of(mounts, {}, survivors) == {"n2": "radio.mp3", "n3": None, "n4": None}
    after = claims_of(mounts, {"radio.mp3": "n2"}, survivors)
    assert after == {"n2": "second.mp3", "n3": None, "n4": None}
    # Without the standbys in the statuses, n3 (fewer claims) would have been first.
    plain = {**survivors, "n2": node_status("n2")}
    assert claims_of(mounts, {"radio.mp3": "n2"}, plain)["n3"] == "second.mp3"


def test_a_standby_stays_where_it_runs_when_claims_change_elsewhere() -> None:
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    (standby,) = standbys(mounts, {"radio.mp3": "n1"}, THREE)
    other = next(name for name in THREE if name not in ("n1", standby))
    low = {
        f"low{index}.mp3": parse_mount(
            {
                "name": f"low{index}.mp3",
                "source_password": "pw",
                "transcode": {"parent": "studio.mp3", "format": {"bitrate_kbps": 64}},
            }
        )
        for index in range(2)
    }
    # The standby's node now owns two transcoded mounts more than the other node.
    claims = {"radio.mp3": "n1", **{name: standby for name in low}}
    everything = {**mounts, **low}
    assert standbys(everything, claims, THREE) == [other]  # by claims alone it would move
    busy = {**THREE, standby: node_status(standby, standbys=("radio.mp3",))}
    kept = [
        me
        for me in busy
        if "radio.mp3"
        in plan_transcoders(everything, claims, busy, (), me, me_eligible=True, leader="n1").standby
    ]
    assert kept == [standby]


def test_an_owner_that_leads_hands_its_programme_over_to_a_node_standing_by() -> None:
    mounts = {"studio.mp3": STUDIO, "radio.mp3": PROGRAMME}
    nodes = {**THREE, "n2": node_status("n2", standbys=("radio.mp3",))}
    claims = {"radio.mp3": "n1"}
    plan = plan_transcoders(mounts, claims, nodes, (), "n1", me_eligible=True, leader="n1")
    assert plan.hand_over == ("radio.mp3",)
    assert plan.run == ()  # stopped before the claim is released
    # Not while it does not lead, nor while nobody stands by (a standby still starting
    # is not reported), nor to a node that gave the programme up.
    for kept in (
        plan_transcoders(mounts, claims, nodes, (), "n1", me_eligible=True, leader="n3"),
        plan_transcoders(mounts, claims, THREE, (), "n1", me_eligible=True, leader="n1"),
        plan_transcoders(
            mounts,
            claims,
            {**nodes, "n2": node_status("n2", standbys=("radio.mp3",), given_up=("radio.mp3",))},
            (),
            "n1",
            me_eligible=True,
            leader="n1",
        ),
    ):
        assert (kept.run, kept.hand_over) == (("radio.mp3",), ())
    # Its Liquidsoap pushes to the old leader (this one just took over): it restarts
    # anyway, so it goes to the other nodes at once, standby or not; alone, it stays.
    moved = plan_transcoders(
        mounts, claims, THREE, (), "n1", me_eligible=True, leader="n1", restarting={"radio.mp3"}
    )
    assert (moved.run, moved.hand_over) == ((), ("radio.mp3",))
    alone = plan_transcoders(
        mounts,
        claims,
        {"n1": node_status("n1")},
        (),
        "n1",
        me_eligible=True,
        leader="n1",
        restarting={"radio.mp3"},
    )
    assert (alone.run, alone.hand_over) == (("radio.mp3",), ())
    # Released, the programme goes to the standby at once, not back to the leader.
    taken = {
        me: plan_transcoders(mounts, {}, nodes, (), me, me_eligible=True, leader="n1").claim
        for me in nodes
    }
    assert taken == {"n1": None, "n2": "radio.mp3", "n3": None}
