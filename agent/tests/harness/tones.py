"""Which test tone a listener hears: the received audio decoded by ffmpeg, then each
candidate frequency's power measured with the Goertzel algorithm. Studios in the tests send
distinct sines (440 Hz main, 660 Hz backup, 880 Hz automation), so the tone names the input
on air."""

from __future__ import annotations

import math
import subprocess
from array import array

SAMPLE_RATE = 8000  # every test tone is far below its Nyquist frequency
SILENCE_RMS = 100.0  # of 32767: about -50 dBFS; a test tone is far above, silence far below
DOMINANCE = 10.0  # the heard tone carries this many times the power of any other candidate


def decode_mono(audio: bytes, container: str) -> array:
    """Signed 16-bit mono samples at SAMPLE_RATE; decode errors at a splice are skipped."""
    result = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-err_detect", "ignore_err", "-f", container, "-i", "pipe:0"),
            *("-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"),
        ],
        input=audio,
        capture_output=True,
        timeout=30,
        check=False,
    )
    samples = array("h")
    samples.frombytes(result.stdout[: len(result.stdout) // 2 * 2])
    return samples


def goertzel_power(samples: array, frequency: float) -> float:
    """The power of `frequency` in `samples` (one DFT bin, without a full FFT)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / SAMPLE_RATE)
    before = earlier = 0.0
    for sample in samples:
        before, earlier = sample + coefficient * before - earlier, before
    return before * before + earlier * earlier - coefficient * before * earlier


def heard_tone(samples: array, candidates: tuple[float, ...]) -> float | None:
    """The candidate that dominates `samples`; None for silence or no clear winner."""
    if not samples:
        return None
    rms = math.sqrt(sum(sample * sample for sample in samples) / len(samples))
    if rms < SILENCE_RMS:
        return None
    powers = sorted(((goertzel_power(samples, f), f) for f in candidates), reverse=True)
    if len(powers) > 1 and powers[0][0] < DOMINANCE * powers[1][0]:
        return None
    return powers[0][1]


def tone_at_end(
    audio: bytes, container: str, candidates: tuple[float, ...], seconds: float = 0.5
) -> float | None:
    """The tone in the last `seconds` of `audio` (the newest a listener received)."""
    samples = decode_mono(audio, container)
    return heard_tone(samples[-int(seconds * SAMPLE_RATE) :], candidates)


def tones_over_time(
    audio: bytes, container: str, candidates: tuple[float, ...], step: float = 0.25
) -> list[float | None]:
    """The tone heard in each `step` of `audio`, in order."""
    samples = decode_mono(audio, container)
    size = int(step * SAMPLE_RATE)
    return [
        heard_tone(samples[start : start + size], candidates)
        for start in range(0, len(samples) - size + 1, size)
    ]
