"""Silent MP3 frames, built directly. Pure.

A Layer III frame whose side information is all zero has no main data and decodes to
digital silence, so silence in any MP3 format is a header and zeros: no encoder needed on
the node, and the frames match the mount's samplerate, channels and bitrate exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from radioagent.model import AudioFormat

_MPEG1_RATES = (44100, 48000, 32000)
_MPEG2_RATES = (22050, 24000, 16000)
_MPEG25_RATES = (11025, 12000, 8000)
_MPEG1_LAYER3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_LSF_LAYER3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


@dataclass(frozen=True)
class SilentStream:
    frame: bytes
    seconds_per_frame: float
    bitrate_kbps: int  # the nearest bitrate the format allows at or below the one asked


def silent_mp3(audio: AudioFormat) -> SilentStream:
    if audio.samplerate in _MPEG1_RATES:
        version_bits, rates, bitrates, samples = 0b11, _MPEG1_RATES, _MPEG1_LAYER3_KBPS, 1152
        side_info_bytes = 32 if audio.channels == 2 else 17
        coefficient = 144
    elif audio.samplerate in _MPEG2_RATES + _MPEG25_RATES:
        mpeg2 = audio.samplerate in _MPEG2_RATES
        version_bits = 0b10 if mpeg2 else 0b00
        rates = _MPEG2_RATES if mpeg2 else _MPEG25_RATES
        bitrates, samples, coefficient = _LSF_LAYER3_KBPS, 576, 72
        side_info_bytes = 17 if audio.channels == 2 else 9
    else:
        raise ValueError(f"MP3 has no samplerate {audio.samplerate}")
    bitrate_index = max(
        index
        for index, kbps in enumerate(bitrates)
        if index and kbps <= max(audio.bitrate_kbps, bitrates[1])
    )
    bitrate_kbps = bitrates[bitrate_index]
    samplerate_index = rates.index(audio.samplerate)
    channel_mode = 0b00 if audio.channels == 2 else 0b11  # stereo or single channel
    header = bytes(
        [
            0xFF,
            0xE0 | version_bits << 3 | 0b01 << 1 | 1,  # Layer III, no CRC
            bitrate_index << 4 | samplerate_index << 2,  # no padding
            channel_mode << 6,
        ]
    )
    length = coefficient * bitrate_kbps * 1000 // audio.samplerate
    if length - len(header) < side_info_bytes:
        raise ValueError(f"{bitrate_kbps} kbps at {audio.samplerate} Hz leaves no room for a frame")
    frame = header + bytes(length - len(header))
    return SilentStream(frame, samples / audio.samplerate, bitrate_kbps)
