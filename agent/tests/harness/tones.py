"""Which test tone a listener hears: the received audio decoded by ffmpeg, then each
candidate frequency's power measured with the Goertzel algorithm. Studios in the tests send
distinct sines (440 Hz main, 660 Hz backup, 880 Hz automation), so the tone names the input
on air."""

from __future__ import annotations

import math
import socket
import subprocess
import threading
import time
from array import array
from urllib.parse import urlsplit

SAMPLE_RATE = 8000  # every test tone is far below its Nyquist frequency
SILENCE_RMS = 100.0  # of 32767: about -50 dBFS; a test tone is far above, silence far below
DOMINANCE = 10.0  # the heard tone carries this many times the power of any other candidate
# ...and at least this share of the slice's energy: a steady test tone measures 0.99, the
# slice where one stream gives way to another (a click, a decoder's first frame) 0.01, in
# which the candidates' tiny powers can still rank one "dominant" (a takeover once read
# as 0.1 s of an input nobody had put on air).
TONE_SHARE = 0.5
# How finely tones_since slices the audio: the resolution of a measured switch (Goertzel's
# bins are 10 Hz wide at this length, far finer than the tones are apart).
STEP_SECONDS = 0.1
FRESH_SECONDS = 1.5  # what a listener says it hears now came in this long ago at most


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
    # A pure sine's Goertzel power at its frequency is its energy times half the length.
    energy = sum(sample * sample for sample in samples)
    if powers[0][0] < TONE_SHARE * energy * len(samples) / 2:
        return None
    return powers[0][1]


def tone_at_end(
    audio: bytes, container: str, candidates: tuple[float, ...], seconds: float = 0.5
) -> float | None:
    """The tone in the last `seconds` of `audio` (the newest a listener received)."""
    samples = decode_mono(audio, container)
    return heard_tone(samples[-int(seconds * SAMPLE_RATE) :], candidates)


class ToneListener:
    """A listener of one URL that keeps everything it receives (with arrival times) on a
    thread of its own, for at most `seconds`, and says which tone it hears now."""

    def __init__(self, url: str, seconds: float = 600.0) -> None:
        parsed = urlsplit(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.path = parsed.path
        self.seconds = seconds
        self.chunks: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True, name=f"listen {url}")
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def reconnect(self) -> None:
        """Listen again if the stream ended (a restarted agent's Icecast may drop its
        listeners); what was received stays."""
        if self._thread.is_alive():
            return
        self.error = None
        self._thread = threading.Thread(target=self._listen, daemon=True, name=self._thread.name)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)

    def _listen(self) -> None:
        deadline = time.monotonic() + self.seconds
        try:
            with socket.create_connection(self.address, timeout=5) as connection:
                connection.sendall(f"GET {self.path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 8192:
                    head += connection.recv(1)
                if not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                    self.error = f"not a 200: {head[:100]!r}"
                    return
                while not self._stop.is_set():
                    if time.monotonic() >= deadline:
                        self.error = f"listened for its {self.seconds:g} s"
                        return
                    data = connection.recv(16384)
                    if not data:
                        self.error = "the server closed the stream"
                        return
                    with self._lock:
                        self.chunks.append((time.monotonic(), data))
        except OSError as error:
            self.error = str(error)

    def received(self, since: float = 0.0) -> bytes:
        with self._lock:
            return b"".join(data for at, data in self.chunks if at >= since)

    def tone_now(self, candidates: tuple[float, ...], nbytes: int = 16000) -> float | None:
        """The tone in the newest half second it received, if that came in the last
        FRESH_SECONDS: a stream that ended hears nothing, not its last tone forever."""
        fresh = self.received(since=time.monotonic() - FRESH_SECONDS)[-nbytes:]
        if len(fresh) < nbytes // 2:
            return None
        return tone_at_end(fresh, "mp3", candidates)

    def tones_since(
        self, since: float, candidates: tuple[float, ...]
    ) -> list[tuple[float, float | None]]:
        """(arrival time, tone) for each STEP_SECONDS of audio received after `since`."""
        with self._lock:
            chunks = [(at, data) for at, data in self.chunks if at >= since]
        audio = b"".join(data for _, data in chunks)
        if not audio:
            return []
        samples = decode_mono(audio, "mp3")
        ends, total = [], 0
        for at, data in chunks:
            total += len(data)
            ends.append((total, at))
        step = int(STEP_SECONDS * SAMPLE_RATE)
        heard = []
        for start in range(0, len(samples) - step + 1, step):
            offset = start / max(1, len(samples)) * len(audio)  # MP3 at a constant bitrate
            arrival = next(at for end, at in ends if end >= offset)
            heard.append((arrival, heard_tone(samples[start : start + step], candidates)))
        return heard
