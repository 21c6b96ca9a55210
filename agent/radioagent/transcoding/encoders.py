"""Liquidsoap 2.1 encoder expressions for a mount's format. Pure. (What Debian's build
can encode is checked when a mount is parsed: model.encodable_problems.)"""

from __future__ import annotations

from radioagent.model import AudioFormat


def encoder_expression(audio: AudioFormat) -> str:
    """The `%encoder(...)` for output.icecast. Debian's Liquidsoap has no %fdkaac: AAC
    goes through its ffmpeg encoder."""
    rate, channels, bitrate = audio.samplerate, audio.channels, audio.bitrate_kbps
    if audio.codec == "mp3":
        stereo = "true" if channels == 2 else "false"
        return f"%mp3(bitrate={bitrate}, samplerate={rate}, stereo={stereo})"
    if audio.codec == "vorbis":
        return f"%vorbis.cbr(samplerate={rate}, channels={channels}, bitrate={bitrate})"
    if audio.codec == "opus":
        return f"%opus(bitrate={bitrate}, samplerate={rate}, channels={channels})"
    if audio.codec == "aac":
        return (
            f'%ffmpeg(format="adts", %audio(codec="aac", b="{bitrate}k", ar={rate}, ac={channels}))'
        )
    if audio.codec == "flac":
        return f"%ogg(%flac(samplerate={rate}, channels={channels}))"
    raise ValueError(f"no encoder for codec {audio.codec!r}")
