"""Socket-level source clients feed Icecast; listeners get exactly the bytes they sent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness.audio import analyse_mp3, analyse_ogg
from tests.harness.clients import SourceClient, connect_and_stream, is_slice_of, listen
from tests.harness.icecast import IcecastServer
from tests.harness.media import AudioSample
from tests.harness.ports import LOOPBACK

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("method", ["SOURCE", "PUT"])
def test_source_client_feeds_a_mount_and_a_listener_receives_its_bytes(
    method: str,
    icecast: IcecastServer,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    source = source_client_factory(
        LOOPBACK,
        icecast.port,
        "/live.mp3",
        password=icecast.settings.source_password,
        method=method,
    )
    connect_and_stream(source, mp3_audio)
    icecast.wait_mount_live("/live.mp3")

    received = listen(f"{icecast.base_url}/live.mp3", 48 * 1024, timeout=15)

    assert received.status == 200
    assert len(received.body) == 48 * 1024
    assert is_slice_of(received.body, mp3_audio.data), "listener bytes differ from the source's"
    assert analyse_mp3(received.body).problems(min_frames=100) == []
    assert source.stream_error is None


def test_put_client_feeds_an_ogg_mount(
    icecast: IcecastServer,
    source_client_factory: Callable[..., SourceClient],
    ogg_audio: AudioSample,
) -> None:
    source = source_client_factory(
        LOOPBACK,
        icecast.port,
        "/live.ogg",
        password=icecast.settings.source_password,
        method="PUT",
        content_type=ogg_audio.content_type,
    )
    connect_and_stream(source, ogg_audio)
    icecast.wait_mount_live("/live.ogg")

    received = listen(f"{icecast.base_url}/live.ogg", 24 * 1024, timeout=15)

    assert received.status == 200
    report = analyse_ogg(received.body)
    assert report.problems(min_pages=5) == []
    assert report.codecs == {"vorbis"}


@pytest.mark.parametrize("method", ["SOURCE", "PUT"])
def test_wrong_source_password_is_refused_and_the_mount_stays_empty(
    method: str,
    icecast: IcecastServer,
    source_client_factory: Callable[..., SourceClient],
) -> None:
    source = source_client_factory(
        LOOPBACK,
        icecast.port,
        "/live.mp3",
        password="not-the-password",
        method=method,
    )

    answer = source.connect()

    assert answer.status == 401
    assert "/live.mp3" not in icecast.live_mounts()
