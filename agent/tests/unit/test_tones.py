"""The harness's tone detector (tests/harness/tones.py), on synthetic samples: a steady
test tone is named; audio that is mostly something else is not, even where one candidate
outweighs the others."""

from __future__ import annotations

import math
from array import array

from tests.harness.tones import SAMPLE_RATE, heard_tone

CANDIDATES = (440.0, 660.0, 550.0, 880.0)
SLICE = int(0.1 * SAMPLE_RATE)


def sine(frequency: float, amplitude: float) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * frequency * n / SAMPLE_RATE) for n in range(SLICE)]


def samples(*parts: list[float]) -> array:
    return array("h", (round(sum(values)) for values in zip(*parts, strict=True)))


def test_a_steady_tone_is_named_and_silence_is_not() -> None:
    assert heard_tone(samples(sine(660, 10000)), CANDIDATES) == 660.0
    assert heard_tone(samples(sine(660, 10)), CANDIDATES) is None  # under -50 dBFS


def test_a_slice_that_is_mostly_something_else_names_no_tone() -> None:
    """550 Hz outweighs every other candidate here, but carries 1% of the energy (like
    the slice where one stream gives way to another): not a tone anyone put on air."""
    weak_tone_in_a_click = samples(sine(550, 300), sine(1500, 3000))
    assert heard_tone(weak_tone_in_a_click, CANDIDATES) is None
    assert heard_tone(samples(sine(550, 3000), sine(1500, 300)), CANDIDATES) == 550.0
