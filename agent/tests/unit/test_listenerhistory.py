"""Listeners over the last hour: a minute keeps its highest count; old minutes fall off."""

from __future__ import annotations

from radioagent.listenerhistory import ListenerHistory


def test_a_minute_keeps_its_highest_count_and_unseen_minutes_are_none() -> None:
    history = ListenerHistory(minutes=5, step=60)
    history.record(600.0, {"live.mp3": 3}, ["live.mp3", "talk.ogg"])
    history.record(630.0, {"live.mp3": 7}, ["live.mp3", "talk.ogg"])
    history.record(659.0, {"live.mp3": 5}, ["live.mp3", "talk.ogg"])
    history.record(780.0, {"live.mp3": 2}, ["live.mp3", "talk.ogg"])
    assert history.series("live.mp3", 780.0) == [None, 7, None, None, 2]
    assert history.series("talk.ogg", 780.0) == [None, 0, None, None, 0]
    assert history.series("nope.mp3", 780.0) == [None] * 5


def test_the_hour_slides_and_a_deleted_mount_is_forgotten() -> None:
    history = ListenerHistory(minutes=3, step=60)
    for minute in range(10):
        history.record(minute * 60.0, {"live.mp3": minute}, ["live.mp3"])
    assert history.series("live.mp3", 9 * 60.0) == [7, 8, 9]
    assert history.series("live.mp3", 11 * 60.0) == [9, None, None]
    history.record(12 * 60.0, {}, [])
    assert history.series("live.mp3", 12 * 60.0) == [None, None, None]
