"""Input start benchmark: how long Liquidsoap's input.http takes from its script's start
to the first sample of an Icecast stream, with ffmpeg probing the container and with the
container named (format="mp3"), side by side in one run, for MP3 and Ogg Vorbis.

One Icecast on loopback, a Liquidsoap tone streaming into it per codec, then for each
round and each way a Liquidsoap (as the transcoders' user) whose script times its own
input from its first line to the input's on_connect and to its first buffered audio.
Prints one JSON object as its last line; bench/results/input_start.json gets the same.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchlib import report, require_root

from tests.harness.icecast import IcecastServer
from tests.harness.liquidsoap import LiquidsoapTone

SCRIPT = """
settings.log.level.set(2)
started = time()
s = input.http(self_sync=true, clock_safe=true, poll_delay=1., {format}
  on_connect=fun (_) -> print("connect " ^ string_of(time() - started)), {url})
s = buffer(buffer=0.2, max=0.5, s)
ready = ref(false)
thread.run(every=0.01, fun () -> if not !ready and source.is_ready(s) then
  ready := true
  print("ready " ^ string_of(time() - started))
  shutdown()
end)
output.dummy(fallible=true, s)
"""
WAYS = {"probed": "", "named": 'format="{demuxer}",'}
CODECS = {"mp3": "mp3", "vorbis": "ogg"}  # the tone's encoder -> ffmpeg's demuxer


def first_sample_seconds(url: str, format_argument: str, directory: Path) -> float:
    path = directory / "input.liq"
    path.write_text(SCRIPT.format(format=format_argument, url=f'"{url}"'))
    path.chmod(0o644)
    result = subprocess.run(
        ["runuser", "-u", "liquidsoap", "--", "liquidsoap", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("ready "):
            return float(line.split()[1])
    raise RuntimeError(f"no first sample: {result.stdout[-500:]}{result.stderr[-500:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    require_root(parser)
    seconds: dict[str, list[float]] = {f"{codec}_{way}": [] for codec in CODECS for way in WAYS}
    with contextlib.ExitStack() as stack:
        icecast = IcecastServer()
        stack.callback(icecast.stop)
        icecast.start()
        for codec in CODECS:
            tone = LiquidsoapTone(icecast, f"/{codec}", encoder=codec)
            stack.callback(tone.stop)
            tone.start()
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        directory.chmod(0o755)
        for _ in range(arguments.rounds):
            for codec, demuxer in CODECS.items():
                for way, template in WAYS.items():
                    url = f"{icecast.base_url}/{codec}"
                    took = first_sample_seconds(url, template.format(demuxer=demuxer), directory)
                    seconds[f"{codec}_{way}"].append(took)
    summary: dict[str, object] = {"rounds": arguments.rounds}
    for name, values in seconds.items():
        summary[f"{name}_s"] = round(statistics.median(values), 2)
        summary[f"{name}_max_s"] = round(max(values), 2)
    for codec in CODECS:
        named = statistics.median(seconds[f"{codec}_named"])
        summary[f"{codec}_probed_over_named"] = round(
            statistics.median(seconds[f"{codec}_probed"]) / named, 1
        )
    report("input_start", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
