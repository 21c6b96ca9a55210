"""Icecast from the project's template, Liquidsoap's tone, and the listener's checks."""

from __future__ import annotations

import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.audio import analyse_mp3, analyse_ogg
from tests.harness.clients import SourceClient, listen
from tests.harness.icecast import IcecastMount, IcecastServer, IcecastSettings
from tests.harness.liquidsoap import LiquidsoapTone
from tests.harness.ports import LOOPBACK

pytestmark = pytest.mark.integration


def test_icecast_runs_as_its_own_user_and_serves_status(icecast: IcecastServer) -> None:
    status = icecast.status()
    assert status["icestats"]["server_id"].startswith("Icecast 2.4")
    process_status = Path(f"/proc/{icecast.process.pid}/status").read_text()
    uid_line = next(line for line in process_status.splitlines() if line.startswith("Uid:"))
    assert int(uid_line.split()[1]) == pwd.getpwnam("icecast2").pw_uid


def test_unknown_mount_is_not_found(icecast: IcecastServer) -> None:
    assert listen(f"{icecast.base_url}/nothing-here", 1024, timeout=5).status == 404


def test_liquidsoap_tone_reaches_a_listener_as_valid_mp3(
    icecast: IcecastServer,
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
) -> None:
    liquidsoap_tone_factory(icecast, "/tone.mp3", encoder="mp3")

    received = listen(f"{icecast.base_url}/tone.mp3", 24 * 1024, timeout=15)

    assert received.status == 200
    assert received.headers["content-type"] == "audio/mpeg"
    report = analyse_mp3(received.body)
    assert report.problems(min_frames=50) == []
    assert report.samplerates == {44100}
    assert report.channels == {2}
    assert report.bitrates_kbps == {128}


def test_liquidsoap_tone_reaches_a_listener_as_valid_ogg_vorbis(
    icecast: IcecastServer,
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
) -> None:
    liquidsoap_tone_factory(icecast, "/tone.ogg", encoder="vorbis")

    # The harness's Vorbis is 96 kbps CBR: 12 kB/s after ~5 kB of codec headers (2 pages),
    # in pages of about 4 kB.
    received = listen(f"{icecast.base_url}/tone.ogg", 32 * 1024, timeout=15)

    assert received.status == 200
    report = analyse_ogg(received.body)
    assert report.problems(min_pages=4) == []
    assert report.codecs == {"vorbis"}


def test_mount_password_from_the_template_is_enforced_for_liquidsoap(
    icecast_factory: Callable[..., IcecastServer],
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
    source_client_factory: Callable[..., SourceClient],
) -> None:
    # A password with XML metacharacters proves the template escapes what it renders.
    mount_password = 'p<&>"w'
    server = icecast_factory(
        IcecastSettings(mounts=(IcecastMount("/studio.mp3", password=mount_password),))
    )

    refused = source_client_factory(
        LOOPBACK, server.port, "/studio.mp3", password=server.settings.source_password
    )
    assert refused.connect().status == 401  # the global password does not open this mount

    liquidsoap_tone_factory(server, "/studio.mp3", password=mount_password)

    assert "/studio.mp3" in server.live_mounts()
