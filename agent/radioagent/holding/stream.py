"""Holding audio as a loop of timed units (MP3 frames, ADTS frames, Ogg pages), so the
feeder can send each unit when its audio is due. Pure.

Pacing by average bytes would be wrong for Ogg: a silent Vorbis loop is ~4 kB of codec
headers and a couple of pages holding seconds of audio each, so players would starve.
"""

from __future__ import annotations

from dataclasses import dataclass

from radioagent.holding.ogg import split_pages, with_serial
from radioagent.holding.repage import repaged
from radioagent.holding.silence import silent_mp3
from radioagent.model import AudioFormat

LOOP_SECONDS_MP3 = 10.0
ADTS_SAMPLES_PER_FRAME = 1024
OPUS_GRANULE_RATE = 48000


@dataclass(frozen=True)
class HoldingLoop:
    units: tuple[tuple[float, bytes], ...]  # (seconds into the loop when due, bytes)
    seconds: float
    ogg: bool = False

    def units_for_round(self, round_number: int, serial_seed: int) -> list[tuple[float, bytes]]:
        """The loop's units for its `round_number`-th repetition; Ogg gets a new serial
        each round so the repetitions form a valid chain."""
        start = round_number * self.seconds
        if not self.ogg:
            return [(start + offset, unit) for offset, unit in self.units]
        # Distinct for every round (an odd step cycles through all 2**32 values).
        serial = (serial_seed + round_number * 0x9E3779B1) & 0xFFFFFFFF
        return [(start + offset, with_serial(unit, serial)) for offset, unit in self.units]


def mp3_loop(audio: AudioFormat) -> HoldingLoop:
    silence = silent_mp3(audio)
    frames = max(1, round(LOOP_SECONDS_MP3 / silence.seconds_per_frame))
    units = tuple((index * silence.seconds_per_frame, silence.frame) for index in range(frames))
    return HoldingLoop(units, frames * silence.seconds_per_frame)


def adts_loop(data: bytes, samplerate: int) -> HoldingLoop:
    """ADTS (AAC) frames: 1024 samples each, length in the 7-byte header."""
    units: list[tuple[float, bytes]] = []
    position = 0
    while position + 7 <= len(data):
        header = data[position : position + 7]
        if header[0] != 0xFF or header[1] & 0xF0 != 0xF0:
            raise ValueError(f"no ADTS frame at byte {position}")
        length = ((header[3] & 0x03) << 11) | (header[4] << 3) | (header[5] >> 5)
        if length < 7 or position + length > len(data):
            raise ValueError(f"ADTS frame at byte {position} is cut short")
        units.append(
            (len(units) * ADTS_SAMPLES_PER_FRAME / samplerate, data[position : position + length])
        )
        position += length
    if not units:
        raise ValueError("no ADTS frames")
    return HoldingLoop(tuple(units), len(units) * ADTS_SAMPLES_PER_FRAME / samplerate)


def ogg_loop(data: bytes, granule_rate: int) -> HoldingLoop:
    """Each page is due when the audio before it has played: at the previous page's
    granule position (header pages at 0)."""
    units = []
    played = 0
    for page in split_pages(data):
        units.append((played / granule_rate, page))
        granule = int.from_bytes(page[6:14], "little", signed=True)
        played = max(played, granule)
    return HoldingLoop(tuple(units), max(played / granule_rate, 0.5), ogg=True)


def encoded_loop(audio: AudioFormat, data: bytes, title: str = "") -> HoldingLoop:
    """`title`: the Ogg chain's comment (listeners of AAC get theirs from ICY metadata)."""
    if audio.codec == "aac":
        return adts_loop(data, audio.samplerate)
    granule_rate = OPUS_GRANULE_RATE if audio.codec == "opus" else audio.samplerate
    # Encoders put silence in pages of seconds each: paced by page, it would come in bursts.
    return ogg_loop(repaged(data, audio.codec, audio.samplerate, title=title), granule_rate)
