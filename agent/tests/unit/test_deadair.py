"""Dead-air bookkeeping: when a mount's live audio started or stopped reaching a node."""

from __future__ import annotations

from radioagent.deadair import MountAir, air_changes, air_reports, live_ages, update_air
from radioagent.icecast.stats import IcecastStats
from radioagent.model import parse_mount


def test_a_mount_never_heard_is_dead_air_from_the_first_look() -> None:
    air = update_air({}, ["live.mp3"], {}, now=100.0)
    assert air == {"live.mp3": MountAir(False, 100.0)}
    report = air_reports(air, now=129.0, threshold=30)["live.mp3"]
    assert (report.live, report.dead_air_seconds, report.dead_air) == (False, 29.0, False)
    assert air_reports(air, now=130.0, threshold=30)["live.mp3"].dead_air


def test_a_live_mount_takes_its_start_from_icecast() -> None:
    air = update_air({}, ["live.mp3"], {"live.mp3": 50.0}, now=100.0)
    report = air_reports(air, now=110.0, threshold=30)["live.mp3"]
    assert (report.live, report.live_seconds, report.dead_air_seconds) == (True, 60.0, 0.0)
    assert not report.dead_air


def test_a_state_keeps_its_start_until_it_changes() -> None:
    air = update_air({}, ["a"], {"a": 0.0}, now=10.0)
    air = update_air(air, ["a"], {"a": 999.0}, now=20.0)  # still live: start kept
    assert air["a"] == MountAir(True, 10.0)
    air = update_air(air, ["a"], {}, now=30.0)  # the source left
    assert air["a"] == MountAir(False, 30.0)
    air = update_air(air, ["a"], {}, now=40.0)
    assert air_reports(air, now=45.0, threshold=10)["a"].dead_air_seconds == 15.0
    air = update_air(air, ["a"], {"a": 1.0}, now=50.0)  # back
    assert air["a"] == MountAir(True, 49.0)


def test_mounts_gone_from_the_cluster_are_forgotten() -> None:
    air = update_air({}, ["a", "b"], {"a": 0.0}, now=1.0)
    assert set(update_air(air, ["b"], {}, now=2.0)) == {"b"}


def test_a_clock_going_back_never_gives_negative_seconds() -> None:
    air = update_air({}, ["a"], {}, now=100.0)
    report = air_reports(air, now=90.0, threshold=5)["a"]
    assert report.dead_air_seconds == 0.0
    assert not report.dead_air


def test_a_transcoded_mount_is_live_only_while_its_parent_is() -> None:
    live = parse_mount({"name": "live.mp3", "source_password": "secret-1"})
    low = parse_mount(
        {
            "name": "low.mp3",
            "source_password": "secret-2",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
        }
    )
    lower = parse_mount(
        {
            "name": "lower.mp3",
            "source_password": "secret-3",
            "transcode": {"parent": "low.mp3", "format": {"codec": "mp3", "bitrate_kbps": 32}},
        }
    )
    mounts = [live, low, lower]

    def stats(started: dict[str, float]) -> IcecastStats:
        return IcecastStats({}, 0.0, frozenset(started), started_at=started)

    # Liquidsoap feeds the transcoded mounts (holding silence) while the studio is away.
    away = stats({"/low.mp3": 900.0, "/lower.mp3": 950.0})
    assert live_ages(mounts, away, wall_now=1000.0) == {}
    # With the studio, each is live as long as the shortest feed up its chain.
    on = stats({"/live.mp3": 980.0, "/low.mp3": 900.0, "/lower.mp3": 950.0})
    assert live_ages(mounts, on, wall_now=1000.0) == {
        "live.mp3": 20.0,
        "low.mp3": 20.0,
        "lower.mp3": 20.0,
    }


def test_a_change_of_air_is_dated_on_the_wall_clock_and_a_first_look_is_no_change() -> None:
    first = update_air({}, ["a", "b"], {"a": 5.0}, now=100.0)
    assert air_changes({}, {}, first, clock_now=100.0, wall_now=1_000_100.0) == {}
    second = update_air(first, ["a", "b"], {"a": 15.0, "b": 2.0}, now=110.0)  # b came
    changed = air_changes({}, first, second, clock_now=110.0, wall_now=1_000_110.0)
    assert changed == {"b": 1_000_108.0}  # when its feed began, as Icecast says
    third = update_air(second, ["a"], {}, now=120.0)  # a left; b is gone from the cluster
    assert air_changes(changed, second, third, clock_now=120.0, wall_now=1_000_120.0) == {
        "a": 1_000_120.0
    }
