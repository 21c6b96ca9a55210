"""Clean switches: listeners get whole frames across every switch between a studio's live
audio and the holding audio (Icecast splices its fallback at an arbitrary byte; the
front door passes on only whole frames). A validating listener counts the breaks in the
chain of MP3 frames it receives, with and without ICY metadata."""

from __future__ import annotations

import bisect
import itertools
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from radioagent.holding.ogg import OGG_HEADER_BYTES, ogg_crc, split_pages
from tests.harness.agents import RadioCluster
from tests.harness.audio import analyse_mp3, analyse_ogg
from tests.harness.clients import SourceClient, StreamRecorder
from tests.harness.liquidsoap import LiquidsoapTone
from tests.harness.media import AudioSample, loudness_db, make_ogg_vorbis
from tests.harness.waiting import wait_for
from tests.integration.test_front_door_listeners import PASSWORD, strip_icy

pytestmark = pytest.mark.integration


def test_listeners_get_whole_frames_across_live_and_holding_switches(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    radio_cluster.create_served_mount({"name": "live.mp3", "source_password": PASSWORD})
    node = radio_cluster.nodes[2]
    url = f"{node.front_door_url}/_stream/live.mp3"
    plain = StreamRecorder(url, max_seconds=60).start()
    icy = StreamRecorder(url, max_seconds=60, headers={"Icy-MetaData": "1"}).start()
    wait_for(lambda: plain.arrivals and icy.arrivals, timeout=10, what="the holding audio")

    for _ in range(2):  # holding -> live -> holding, twice
        source = radio_cluster.nodes[0].front_door_source(
            source_client_factory, "/live.mp3", PASSWORD, content_type=mp3_audio.content_type
        )
        source.connect()
        source.start_streaming(mp3_audio.data, mp3_audio.bytes_per_second)
        wait_for(
            lambda: node.plays_source_audio("/live.mp3", mp3_audio.data),
            timeout=10,
            what="the studio on the listeners' node",
        )
        source.stop()
        wait_for(
            lambda: not node.plays_source_audio("/live.mp3", mp3_audio.data),
            timeout=10,
            what="the holding audio back",
        )
    received = len(plain.body)
    wait_for(lambda: len(plain.body) > received + 32000, timeout=10, what="more holding audio")
    plain.stop()
    icy.stop()

    report = analyse_mp3(bytes(plain.body))
    assert report.problems(min_frames=100) == []
    metaint = int(icy.headers_received["icy-metaint"])
    audio, blocks = strip_icy(bytes(icy.body), metaint)
    assert blocks
    assert analyse_mp3(audio).problems(min_frames=100) == []


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
def test_ogg_holding_audio_is_valid_decodable_and_paced(
    radio_cluster: RadioCluster, codec: str
) -> None:
    """No studio: the first listener on a node gets the holding audio as a valid,
    decodable chain, starting with at most the current chain (not Icecast's burst of
    dozens of tiny ones), then page after page as the audio plays."""
    audio_format: dict[str, str | int] = {"codec": codec}
    if codec == "opus":
        audio_format |= {"samplerate": 48000, "bitrate_kbps": 64}
    radio_cluster.create_served_mount(
        {"name": "live.ogg", "source_password": PASSWORD, "format": audio_format}
    )
    node = radio_cluster.nodes[1]
    listener = StreamRecorder(f"{node.front_door_url}/_stream/live.ogg", max_seconds=30).start()
    wait_for(lambda: listener.arrivals, timeout=10, what="the first bytes")
    started = listener.arrivals[0][0]
    wait_for(
        lambda: listener.arrivals[-1][0] - started > 12,
        timeout=20,
        what="twelve seconds of holding audio",
    )
    listener.stop()
    body = bytes(listener.body)
    report = analyse_ogg(body)
    assert report.problems(min_pages=20) == []
    assert report.codecs == {codec}
    first_second = sum(size for at, size in listener.arrivals if at - started < 1.0)
    first_chains = body[:first_second].count(b"OggS\x00\x02")  # pages starting a chain
    assert first_chains <= 2, first_chains
    assert listener.longest_gap(started, listener.arrivals[-1][0]) <= 2.5
    assert ffmpeg_ogg_errors(body) == ""


def chained_ogg(path: Path, chains: int, seconds: float) -> AudioSample:
    """`chains` Vorbis streams of `seconds` each, one after the other (each its own
    serial), as a playout that starts a new chain at every title sends them."""
    parts = []
    for index in range(chains):
        part = path.with_name(f"{path.stem}-{index}.ogg")
        make_ogg_vorbis(part, seconds)
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return AudioSample(path, "application/ogg", chains * seconds)


def test_a_new_listener_gets_the_current_chain_not_icecasts_burst_of_old_ones(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    tmp_path: Path,
) -> None:
    """Icecast gives a new connection its last 64 KiB at once: with short chains, several
    of them, each with its header pages. A node's first listener starts with the current
    chain only, as later joiners do."""
    audio = chained_ogg(tmp_path / "chains.ogg", chains=40, seconds=0.5)
    radio_cluster.create_served_mount(
        {"name": "live.ogg", "source_password": PASSWORD, "format": {"codec": "vorbis"}}
    )
    source = radio_cluster.nodes[0].front_door_source(
        source_client_factory, "/live.ogg", PASSWORD, content_type=audio.content_type
    )
    source.connect()
    source.start_streaming(audio.data, audio.bytes_per_second, burst_seconds=0.5)
    node = radio_cluster.nodes[2]
    wait_for(  # Icecast's queue on the listener's node holds several chains by then
        lambda: source.bytes_sent > len(audio.data) // 2,
        timeout=20,
        what="half the chains sent",
    )
    listener = StreamRecorder(f"{node.front_door_url}/_stream/live.ogg", max_seconds=10).start()
    wait_for(lambda: listener.arrivals, timeout=10, what="the first bytes")
    started = listener.arrivals[0][0]
    wait_for(lambda: listener.arrivals[-1][0] - started > 1.5, timeout=10, what="more audio")
    listener.stop()
    first = sum(size for at, size in listener.arrivals if at - started < 0.5)
    chains_at_once = bytes(listener.body[:first]).count(b"OggS\x00\x02")
    assert 1 <= chains_at_once <= 2, chains_at_once
    assert analyse_ogg(bytes(listener.body)).problems(min_pages=4) == []


# Liquidsoap's sine is about -3 dB, the holding silence about -91 dB (digital silence).
TONE_DB = -30.0
SILENCE_DB = -60.0
SWITCH_TIMEOUT = 20.0  # bounds a switch as every node's listener hears it
_BEGINNING_OF_STREAM, _CONTINUED_PACKET = 0x02, 0x01
_HEADER_SIGNATURES = {  # (identification, comment): the first two packets of a chain
    "vorbis": (b"\x01vorbis", b"\x03vorbis"),
    "opus": (b"OpusHead", b"OpusTags"),
}


def last_chain_loudness_db(capture: bytes) -> float:
    """Mean volume of the capture's last chain (from its last BOS page on), which is all
    live tone or all holding silence; an exception while it has no audio yet."""
    start = capture.rfind(b"OggS\x00\x02")
    if start == -1:
        raise AssertionError("no chain started yet")
    return loudness_db(capture[start:], "ogg")


def whole_pages_length(capture: bytes) -> int:
    """How many bytes of the capture are whole pages: hanging up cuts the last one short."""
    position = 0
    while position + OGG_HEADER_BYTES <= len(capture):
        lacing_end = position + OGG_HEADER_BYTES + capture[position + 26]
        if lacing_end > len(capture):
            break
        end = lacing_end + sum(capture[position + OGG_HEADER_BYTES : lacing_end])
        if end > len(capture):
            break
        position = end
    return position


_HEADER_GRANULES = (0, 0xFFFFFFFFFFFFFFFF)  # header pages, and pages that end no packet


def ogg_chain_problems(pages: list[bytes], codec: str) -> list[str]:
    """Where a capture of whole pages breaks chained Ogg: every chain starts with a BOS
    page holding just the identification header, its next page starts the comment header,
    all its pages carry its serial (not the previous chain's) with sequence numbers one
    apart, and every page's CRC holds. One jump is allowed, right after the header pages:
    a listener moved to a chain already playing gets its headers, then its current page,
    as Icecast serves every listener who joins an Ogg stream."""
    identification, comment = _HEADER_SIGNATURES[codec]
    problems = []
    serial: int | None = None
    next_sequence = 0
    starts_comment = in_headers = False
    for index, page in enumerate(pages):
        flags = page[5]
        page_serial = int.from_bytes(page[14:18], "little")
        sequence = int.from_bytes(page[18:22], "little")
        granule = int.from_bytes(page[6:14], "little")
        lacing = page[OGG_HEADER_BYTES : OGG_HEADER_BYTES + page[26]]
        body = page[OGG_HEADER_BYTES + len(lacing) :]
        where = f"page {index} (serial {page_serial:#x}, sequence {sequence})"
        if ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != int.from_bytes(page[22:26], "little"):
            problems.append(f"{where}: bad CRC")
        if flags & _BEGINNING_OF_STREAM:
            if page_serial == serial:
                problems.append(f"{where}: a new chain with the previous chain's serial")
            if not body.startswith(identification) or sum(size < 255 for size in lacing) != 1:
                problems.append(f"{where}: BOS page is not just the {codec} identification")
            serial, next_sequence, starts_comment = page_serial, sequence + 1, True
            in_headers = True
            continue
        if serial is None:
            problems.append(f"{where}: before any BOS page")
            continue
        if page_serial != serial:
            problems.append(f"{where}: in the chain of serial {serial:#x}")
        joined = in_headers and granule not in _HEADER_GRANULES and sequence > next_sequence
        if sequence != next_sequence and not joined:
            problems.append(f"{where}: expected sequence {next_sequence}")
        in_headers = in_headers and granule in _HEADER_GRANULES
        if starts_comment and (flags & _CONTINUED_PACKET or not body.startswith(comment)):
            problems.append(f"{where}: the page after BOS does not start the comment header")
        next_sequence, starts_comment = sequence + 1, False
    return problems


def longest_wait(arrivals: list[tuple[float, int]]) -> tuple[float, int]:
    """The longest time between two reads of a listener, and the byte the later one began
    with."""
    longest, resumed_at, received = 0.0, 0, arrivals[0][1]
    for (earlier, _), (later, size) in itertools.pairwise(arrivals):
        if later - earlier > longest:
            longest, resumed_at = later - earlier, received
        received += size
    return longest, resumed_at


def switched_capture_problems(listener: StreamRecorder, codec: str) -> list[str]:
    """What a listener who heard three switches would find wrong in its recording: a
    chain broken (see ogg_chain_problems), fewer chains than switches, a gap over 2.5 s,
    or a word from ffmpeg decoding it."""
    capture = bytes(listener.body)
    whole = capture[: whole_pages_length(capture)]
    try:
        pages = split_pages(whole)
    except ValueError as error:
        return [str(error)]
    problems = ogg_chain_problems(pages, codec)
    chains = sum(page[5] & _BEGINNING_OF_STREAM != 0 for page in pages)
    if chains < 4:
        problems.append(f"{chains} chains across 3 switches")
    gap, resumed_at = longest_wait(listener.arrivals)
    if gap > 2.5:
        page_starts = list(itertools.accumulate((len(page) for page in pages), initial=0))
        page = bisect.bisect_right(page_starts, resumed_at) - 1
        problems.append(f"{gap:.1f} s without bytes before byte {resumed_at} (page {page})")
    decoding = ffmpeg_ogg_errors(whole)
    if decoding:
        problems.append(decoding)
    return problems


def ffmpeg_ogg_errors(ogg: bytes) -> str:
    """What ffmpeg says decoding `ogg` at its error level: "" for a clean stream."""
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", "null", "-"],
        input=ogg,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if decoded.returncode or decoded.stderr:
        return f"ffmpeg exited {decoded.returncode}: {decoded.stderr.decode()[-500:]}"
    return ""


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
def test_ogg_listeners_get_valid_chains_across_live_and_holding_switches(
    radio_cluster: RadioCluster,
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
    tmp_path: Path,
    codec: str,
) -> None:
    """holding -> live -> holding -> live, as listeners on every node hear it: one
    recording each, which ffmpeg decodes without a word, whose chains are each valid Ogg
    (a switch starts a new chain, never splices one into another), with no gap."""
    mount = f"live-{codec}.ogg"
    audio_format: dict[str, str | int] = {"codec": codec}
    if codec == "opus":
        audio_format |= {"samplerate": 48000, "bitrate_kbps": 64}
    radio_cluster.create_served_mount(
        {"name": mount, "source_password": PASSWORD, "format": audio_format}
    )
    leader_name = radio_cluster.wait_leader()
    leader = radio_cluster.node(leader_name)
    entry = next(node for node in radio_cluster.nodes if node.name != leader_name)
    listeners = {
        node.name: StreamRecorder(f"{node.front_door_url}/_stream/{mount}", max_seconds=150)
        for node in radio_cluster.nodes
    }
    for listener in listeners.values():
        listener.start()

    def wait_everywhere(hears: Callable[[float], bool], what: str) -> None:
        def heard() -> bool:
            return all(
                hears(last_chain_loudness_db(bytes(listener.body)))
                for listener in listeners.values()
            )

        wait_for(heard, timeout=SWITCH_TIMEOUT, what=f"{what} on every node's listener")

    def studio() -> LiquidsoapTone:
        tone: LiquidsoapTone = liquidsoap_tone_factory(
            leader.icecast,
            f"/{mount}",
            password=PASSWORD,
            port=entry.front_door_port,
            live_mount=f"/_live/{mount}",
            encoder=codec,
        )
        return tone

    wait_everywhere(lambda db: db < SILENCE_DB, "the holding audio")
    tone = studio()
    wait_everywhere(lambda db: db > TONE_DB, "the studio's tone")
    tone.stop()
    wait_everywhere(lambda db: db < SILENCE_DB, "the holding audio after the studio left")
    studio()
    wait_everywhere(lambda db: db > TONE_DB, "the studio's tone again")

    cut_off = {name: rec.error for name, rec in listeners.items() if not rec.connected}
    for listener in listeners.values():
        listener.stop()
    assert cut_off == {}
    problems = {}
    for name, listener in listeners.items():
        (tmp_path / f"{name}.ogg").write_bytes(listener.body)  # for a failure's post-mortem
        problems[name] = switched_capture_problems(listener, codec)
    assert problems == {name: [] for name in listeners}, f"captures in {tmp_path}"
