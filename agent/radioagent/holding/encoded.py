"""Silence for codecs that need a real encoder (Vorbis, Opus, FLAC, AAC): encoded once per
format by Liquidsoap (already on every node for transcoding), cached on disk, then looped
by the feeder. Encoding 10 s of silence takes Liquidsoap ~2 s; the loop costs nothing."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from radioagent.liquidsoap import liquidsoap_encoder
from radioagent.model import AudioFormat

HOLDING_SECONDS = 10.0
ENCODE_TIMEOUT_SECONDS = 120.0


def silence_script(audio: AudioFormat, output_path: str, seconds: float) -> str:
    """A Liquidsoap script encoding `seconds` of silence as fast as it can, then exiting."""
    lines = [
        "settings.log.stdout.set(true)",
        "settings.log.file.set(false)",
        "settings.log.level.set(2)",
        f"silence = once(blank(duration={float(seconds)!r}))",
        'clock.assign_new(sync="none", [silence])',
        # A JSON string is a valid Liquidsoap string literal.
        f"output.file({liquidsoap_encoder(audio)}, {json.dumps(output_path)}, "
        "fallible=true, on_stop=shutdown, silence)",
    ]
    return "\n".join(lines) + "\n"


def cache_name(audio: AudioFormat) -> str:
    return f"silence-{audio.codec}-{audio.bitrate_kbps}k-{audio.samplerate}-{audio.channels}ch"


_encoding_locks: dict[str, asyncio.Lock] = {}


async def encoded_silence(
    audio: AudioFormat, cache_dir: Path, liquidsoap_command: tuple[str, ...]
) -> bytes:
    """The format's holding silence, from the cache or encoded now (and cached). One
    encode per format at a time, in this agent and across processes sharing the cache."""
    cached = cache_dir / cache_name(audio)
    with contextlib.suppress(FileNotFoundError):
        return cached.read_bytes()
    cache_dir.mkdir(parents=True, exist_ok=True)
    async with _encoding_locks.setdefault(cached.name, asyncio.Lock()):
        lock_fd = os.open(cache_dir / f".{cached.name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, fcntl.flock, lock_fd, fcntl.LOCK_EX
            )
            with contextlib.suppress(FileNotFoundError):
                return cached.read_bytes()  # another process encoded it meanwhile
            data = await _encode(audio, cache_dir, liquidsoap_command)
            temporary = cache_dir / f".{cached.name}.{os.getpid()}"
            temporary.write_bytes(data)
            os.replace(temporary, cached)
            return data
        finally:
            os.close(lock_fd)  # closing releases the lock


async def _encode(
    audio: AudioFormat, cache_dir: Path, liquidsoap_command: tuple[str, ...]
) -> bytes:
    # Liquidsoap may run as another user (it refuses root): give it a directory it can use.
    work_dir = Path(tempfile.mkdtemp(prefix=".encode-", dir=cache_dir))
    try:
        work_dir.chmod(0o777)
        output = work_dir / "silence"
        script = work_dir / "silence.liq"
        script.write_text(silence_script(audio, str(output), HOLDING_SECONDS))
        script.chmod(0o644)
        process = await asyncio.create_subprocess_exec(
            *liquidsoap_command,
            str(script),
            cwd=work_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            log_output, _ = await asyncio.wait_for(process.communicate(), ENCODE_TIMEOUT_SECONDS)
        except BaseException:  # timeout, or the feed was cancelled: never leave it running
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0 or not output.exists() or output.stat().st_size == 0:
            tail = log_output.decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"Liquidsoap could not encode {cache_name(audio)}: {tail}")
        return output.read_bytes()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
