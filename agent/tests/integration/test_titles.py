"""Song titles: an encoder's update sent to any node reaches ICY listeners on every node,
and is kept in etcd (current title, the last ones). Real etcd, Icecast and agents; the
metadata requests, sources and listeners are clients on the wire."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from tests.harness.agents import AgentNode, RadioCluster
from tests.harness.clients import ListenResult, SourceClient, connect_and_stream, listen
from tests.harness.icecast import IcecastServer
from tests.harness.liquidsoap import LiquidsoapTone
from tests.harness.media import AudioSample
from tests.harness.ports import LOOPBACK
from tests.harness.titles import TitleListener
from tests.harness.waiting import wait_for
from tests.integration.test_front_door_listeners import PASSWORD, live_source

pytestmark = pytest.mark.integration

# Bounds on waiting, not the target (bench/studio measures propagation against 2 s).
TITLE_TIMEOUT = 6.0


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def send_title(node: AgentNode, target: str, headers: dict[str, str] | None = None) -> ListenResult:
    return listen(f"{node.front_door_url}{target}", 4096, timeout=5, headers=headers)


def icecast_update(mount: str, title: str, extra: str = "") -> str:
    return f"/admin/metadata?mount=/{mount}&mode=updinfo&song={quote(title)}{extra}"


@pytest.fixture
def title_listeners() -> Iterator[Callable[..., TitleListener]]:
    opened: list[TitleListener] = []

    def open_listener(url: str, **options: bool) -> TitleListener:
        listener = TitleListener(url, **options)
        opened.append(listener)
        return listener

    yield open_listener
    for listener in opened:
        listener.close()


def others(cluster: RadioCluster) -> list[AgentNode]:
    leader = cluster.wait_leader()
    return [node for node in cluster.nodes if node.name != leader]


def test_a_title_sent_to_a_replica_reaches_icy_listeners_on_every_node(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    title_listeners: Callable[..., TitleListener],
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    listeners = [
        title_listeners(f"{node.front_door_url}/_stream/live.mp3") for node in radio_cluster.nodes
    ]
    replica, other_replica = others(radio_cluster)

    first = "Nina Simone - Ne me quitte pas (été 夏)"
    answer = send_title(
        replica, icecast_update("live.mp3", first, "&charset=UTF-8"), basic("source", PASSWORD)
    )
    assert answer.status == 200, answer
    assert b"Metadata update successful" in answer.body
    for listener in listeners:
        listener.wait_title(first, TITLE_TIMEOUT)

    # A listener joining later gets the title in its very first metadata block.
    late = title_listeners(f"{radio_cluster.nodes[2].front_door_url}/_stream/live.mp3")
    wait_for(lambda: late.heard, timeout=TITLE_TIMEOUT, what="the late listener's first title")
    assert late.heard[0].title == first

    # SHOUTcast v1's form, on the other replica, names no mount: the password does.
    second = "Second song"
    answer = send_title(
        other_replica, f"/admin.cgi?mode=updinfo&song={quote(second)}&pass={PASSWORD}"
    )
    assert answer.status == 200, answer
    for listener in [*listeners, late]:
        listener.wait_title(second, TITLE_TIMEOUT)
        assert not listener.problems

    now_playing, _ = radio_cluster.store().now_playing("live.mp3")
    assert now_playing is not None
    assert [title.text for title in now_playing.history] == [second, first]
    assert now_playing.changes == 2


def test_bad_title_updates_are_refused_and_change_nothing(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    title_listeners: Callable[..., TitleListener],
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    replica = others(radio_cluster)[0]
    good = "The good title"
    assert (
        send_title(replica, icecast_update("live.mp3", good), basic("source", PASSWORD)).status
        == 200
    )
    listener = title_listeners(f"{radio_cluster.nodes[0].front_door_url}/_stream/live.mp3")
    listener.wait_title(good, TITLE_TIMEOUT)
    store = radio_cluster.store()
    _, revision = store.now_playing("live.mp3")

    credentials = basic("source", PASSWORD)
    refused = [
        (icecast_update("live.mp3", "x"), basic("source", "wrong"), 401),
        (icecast_update("live.mp3", "x"), None, 401),
        (icecast_update("nope.mp3", "x"), credentials, 404),
        (icecast_update("live.mp3", "x" * 1001), credentials, 400),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&charset=UTF-8&song=%FF", credentials, 400),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&song=a%0Ab", credentials, 400),
        ("/admin/metadata?mount=/live.mp3&mode=stats", credentials, 400),
        ("/admin.cgi?mode=updinfo&song=x&pass=wrong", None, 401),
        ("/admin.cgi?mode=updinfo&song=x", None, 400),
    ]
    for target, headers, status in refused:
        answer = send_title(replica, target, headers)
        assert answer.status == status, (target, answer)
        if status == 401 and headers is not None and target.startswith("/admin/metadata"):
            assert answer.headers["www-authenticate"].startswith("Basic")

    assert store.now_playing("live.mp3")[1] == revision
    # The stream kept going with its title: a whole round of metadata blocks later, still it.
    before = listener.bytes_read
    wait_for(
        lambda: listener.bytes_read > before + 32000,
        timeout=TITLE_TIMEOUT,
        what="more of the stream",
    )
    assert [heard.title for heard in listener.heard] == [good]
    assert not listener.problems


def test_the_status_api_and_the_mounts_page_show_what_is_playing(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    node = radio_cluster.nodes[1]
    titles = ["<b>Bold</b> & co", "Plain"]
    for title in titles:
        assert (
            send_title(node, icecast_update("live.mp3", title), basic("source", PASSWORD)).status
            == 200
        )

    def mount_document() -> dict | None:
        received = listen(f"{node.front_door_url}/api/v1/mounts/live.mp3", 1 << 20, timeout=3)
        document = json.loads(received.body) if received.status == 200 else None
        return document if document and document["now_playing"]["title"] == "Plain" else None

    document = wait_for(mount_document, timeout=TITLE_TIMEOUT, what="the mount's document")
    assert [entry["title"] for entry in document["now_playing"]["history"]] == titles[::-1]
    status = json.loads(listen(f"{node.front_door_url}/api/v1/status", 1 << 20).body)
    assert status["mounts"]["live.mp3"]["now_playing"]["title"] == "Plain"
    assert "history" not in status["mounts"]["live.mp3"]["now_playing"]
    assert listen(f"{node.front_door_url}/api/v1/mounts/nope.mp3", 4096).status == 404
    page = listen(f"{node.front_door_url}/", 1 << 20).body.decode()
    assert "Plain" in page
    assert node.metric("radio_mount_title_changes_total", mount="live.mp3") == 2


def test_liquidsoap_sends_its_titles_through_a_replica(
    radio_cluster: RadioCluster,
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
    title_listeners: Callable[..., TitleListener],
) -> None:
    """Liquidsoap's output.icecast sends MP3 titles as /admin/metadata requests to the
    host it streams to: here a replica's front door."""
    radio_cluster.create_served_mount({"name": "live.mp3", "source_password": PASSWORD})
    leader = radio_cluster.node(radio_cluster.wait_leader())
    liquidsoap_tone_factory(
        leader.icecast,
        "/live.mp3",
        password=PASSWORD,
        port=others(radio_cluster)[0].front_door_port,
        live_mount="/_live/live.mp3",
        titles="Tone",
    )
    listeners = [
        title_listeners(f"{node.front_door_url}/_stream/live.mp3") for node in radio_cluster.nodes
    ]
    arrivals = [listener.wait_title("Tone 2", 15) for listener in listeners]
    assert arrivals
    for listener in listeners:
        assert not listener.problems


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
def test_ogg_titles_reach_listeners_on_every_node_in_band_and_are_kept(
    radio_cluster: RadioCluster,
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
    title_listeners: Callable[..., TitleListener],
    codec: str,
) -> None:
    """Ogg carries titles in the stream: each title starts a new chained stream whose
    comment header names it. The relays and the fan-out must pass them whole, the studio's
    node keeps them as the mount's titles, and the holding audio's chains name the
    mount's holding title."""
    mount = f"live-{codec}.ogg"
    audio_format: dict[str, str | int] = {"codec": codec}
    if codec == "opus":
        audio_format |= {"samplerate": 48000, "bitrate_kbps": 64}
    radio_cluster.create_served_mount(
        {
            "name": mount,
            "source_password": PASSWORD,
            "format": audio_format,
            "holding_title": "Back soon",
        }
    )
    listeners = [
        title_listeners(f"{node.front_door_url}/_stream/{mount}", icy=False)
        for node in radio_cluster.nodes
    ]
    for listener in listeners:
        listener.wait_title("Back soon", TITLE_TIMEOUT)
    leader = radio_cluster.node(radio_cluster.wait_leader())
    studio = liquidsoap_tone_factory(
        leader.icecast,
        f"/{mount}",
        password=PASSWORD,
        port=others(radio_cluster)[0].front_door_port,
        live_mount=f"/_live/{mount}",
        encoder=codec,
        titles="Tone",
    )
    for listener in listeners:
        listener.wait_title("Tone 2", 15)
        listener.wait_title("Tone 3", 15)

    def history() -> list[str] | None:
        received = listen(f"{leader.front_door_url}/api/v1/mounts/{mount}", 1 << 20, timeout=3)
        if received.status != 200:
            return None
        titles = [entry["title"] for entry in json.loads(received.body)["now_playing"]["history"]]
        return titles if "Tone 3" in titles else None

    kept = wait_for(history, timeout=TITLE_TIMEOUT, what="the studio's titles in etcd")
    assert kept[kept.index("Tone 3") + 1] == "Tone 2"  # newest first, in the order sent
    studio.stop()  # holding audio again, with its title
    for listener in listeners:
        listener.wait_current("Back soon", 15)
        assert not listener.problems


def test_holding_audio_has_its_own_title_and_the_studios_comes_back_with_it(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    title_listeners: Callable[..., TitleListener],
) -> None:
    radio_cluster.create_served_mount(
        {"name": "live.mp3", "source_password": PASSWORD, "holding_title": "Back soon"}
    )
    node = radio_cluster.nodes[1]
    listener = title_listeners(f"{node.front_door_url}/_stream/live.mp3")
    listener.wait_title("Back soon", TITLE_TIMEOUT)

    def studio() -> SourceClient:
        source = radio_cluster.nodes[0].front_door_source(
            source_client_factory, "/live.mp3", PASSWORD, content_type=mp3_audio.content_type
        )
        source.connect()
        source.start_streaming(mp3_audio.data, mp3_audio.bytes_per_second)
        return source

    source = studio()
    answer = send_title(node, icecast_update("live.mp3", "Studio song"), basic("source", PASSWORD))
    assert answer.status == 200
    listener.wait_title("Studio song", TITLE_TIMEOUT)

    source.stop()  # the studio leaves: holding audio, and its title
    listener.wait_current("Back soon", 15)
    studio()  # back, without sending a title: the last one is the studio's
    listener.wait_current("Studio song", 15)
    heard = [heard.title for heard in listener.heard]
    # The studio's first audio may reach the listener before its first title reaches the
    # cluster: until then it plays with the stream's own title, which is empty. Coming
    # back, it has the title it left with at once.
    if heard[1:2] == [""]:
        del heard[1]
    assert heard == ["Back soon", "Studio song", "Back soon", "Studio song"]
    assert not listener.problems


def test_a_relayed_streams_titles_reach_listeners_and_are_kept(
    radio_cluster: RadioCluster,
    icecast: IcecastServer,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    title_listeners: Callable[..., TitleListener],
) -> None:
    """A mount that relays another station's stream: that station's titles (ICY, read by
    the leader's Icecast) reach listeners on every node and are kept as the mount's."""
    external = source_client_factory(
        LOOPBACK, icecast.port, "/ext.mp3", password=icecast.settings.source_password
    )
    connect_and_stream(external, mp3_audio)
    icecast.wait_mount_live("/ext.mp3")
    credentials = basic("source", icecast.settings.source_password)

    def external_title(title: str) -> None:
        answer = listen(
            f"{icecast.base_url}{icecast_update('ext.mp3', title)}", 4096, headers=credentials
        )
        assert answer.status == 200

    external_title("Elsewhere 1")
    radio_cluster.create_served_mount(
        {
            "name": "relayed.mp3",
            "source_password": PASSWORD,
            "relay_url": f"http://{LOOPBACK}:{icecast.port}/ext.mp3",
        }
    )
    listeners = [
        title_listeners(f"{node.front_door_url}/_stream/relayed.mp3")
        for node in radio_cluster.nodes
    ]
    for listener in listeners:
        listener.wait_title("Elsewhere 1", 15)
    external_title("Elsewhere 2")
    for listener in listeners:
        listener.wait_current("Elsewhere 2", TITLE_TIMEOUT)
        assert not listener.problems

    def history() -> list[str] | None:
        node = others(radio_cluster)[0]
        received = listen(f"{node.front_door_url}/api/v1/mounts/relayed.mp3", 1 << 20, timeout=3)
        if received.status != 200:
            return None
        titles = [entry["title"] for entry in json.loads(received.body)["now_playing"]["history"]]
        return titles if titles[:1] == ["Elsewhere 2"] else None

    kept = wait_for(history, timeout=TITLE_TIMEOUT, what="the relayed titles in etcd")
    assert kept == ["Elsewhere 2", "Elsewhere 1"]
