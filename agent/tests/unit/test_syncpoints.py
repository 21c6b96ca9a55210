"""Where a decoder can start in a studio's stream, fed in arbitrary pieces."""

from __future__ import annotations

import random

import pytest

from radioagent.frontdoor.syncpoints import (
    SyncPoint,
    SyncPoints,
    adts_frame_length,
    mp3_frame_length,
)
from radioagent.holding.silence import silent_mp3
from radioagent.model import AudioFormat
from tests.unit.test_front_door_http import ogg_page


def feed_in_pieces(points: SyncPoints, data: bytes, seed: int = 3) -> None:
    rng = random.Random(seed)
    position = 0
    while position < len(data):
        size = rng.randint(1, 700)
        points.feed(data[position : position + size])
        position += size


@pytest.mark.parametrize(
    ("audio", "length"),
    [
        (AudioFormat("mp3", 128, 44100, 2), 417),
        (AudioFormat("mp3", 64, 22050, 1), 208),
        (AudioFormat("mp3", 320, 48000, 2), 960),
    ],
)
def test_mp3_frame_lengths(audio: AudioFormat, length: int) -> None:
    frame = silent_mp3(audio).frame
    assert mp3_frame_length(frame[:4]) == len(frame) == length


def test_frames_are_found_after_junk_and_not_inside_audio() -> None:
    frame = silent_mp3(AudioFormat("mp3", 128, 44100, 2)).frame
    # Junk before the first frame, holding a sync pattern that no frame follows.
    junk = b"ID3" + b"\xff\xfb\x90\x00" + bytes(50)
    stream = junk + frame * 6
    points = SyncPoints("mp3")
    feed_in_pieces(points, stream)
    # The last frame is not confirmed until the next one's header arrives.
    assert [point.offset for point in points.points] == [
        len(junk) + index * len(frame) for index in range(5)
    ]
    assert points.first_from(len(junk) + 1) == SyncPoint(len(junk) + len(frame))
    points.forget_before(len(junk) + 2 * len(frame))
    assert points.points[0].offset == len(junk) + 2 * len(frame)


def test_adts_frames() -> None:
    def adts(length: int) -> bytes:
        header = bytes(
            [
                0xFF,
                0xF1,
                0x50,
                0x80 | (length >> 11),
                (length >> 3) & 0xFF,
                (length & 7) << 5 | 0x1F,
                0xFC,
            ]
        )
        return header + bytes(length - 7)

    frames = [adts(length) for length in (300, 280, 310, 290)]
    assert adts_frame_length(frames[0][:7]) == 300
    points = SyncPoints("aac")
    feed_in_pieces(points, b"\x00\x01" + b"".join(frames))
    assert [point.offset for point in points.points] == [2, 302, 582]


def test_ogg_pages_chain_starts_and_headers() -> None:
    first_headers = [ogg_page(0, 1, 2, b"id"), ogg_page(0, 1, 0, b"comments")]
    first_audio = [ogg_page(960, 1, 0, b"a1"), ogg_page(1920, 1, 0, b"a2")]
    second_headers = [ogg_page(0, 2, 2, b"id2"), ogg_page(0, 2, 0, b"comments2")]
    second_audio = [ogg_page(960, 2, 0, b"b1")]
    pages = first_headers + first_audio + second_headers + second_audio
    points = SyncPoints("vorbis")
    feed_in_pieces(points, b"junk" + b"".join(pages))
    offsets = [4]
    for page in pages[:-1]:
        offsets.append(offsets[-1] + len(page))
    # Every page but the non-first header pages is a place to start; chain starts flagged.
    assert list(points.points) == [
        SyncPoint(offsets[0], chain_start=True),
        SyncPoint(offsets[2]),
        SyncPoint(offsets[3]),
        SyncPoint(offsets[4], chain_start=True),
        SyncPoint(offsets[6]),
    ]
    # The headers to send before starting mid-chain are the current chain's.
    assert points.headers == b"".join(second_headers)
