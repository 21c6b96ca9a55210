"""Holding silence in short Ogg pages. Pure.

Encoders put silence in few, long pages (Liquidsoap's Vorbis: 10 s of silence in two
pages of 6 and 4 s). The feeder sends a page when the audio before it has played, so
listeners got seconds at once and then nothing for seconds. Re-paged into pages of at
most PAGE_SECONDS, the holding audio flows like live audio.

A page's granule position says where its last packet ends, so each packet's length in
samples must be known: Opus from its TOC byte (RFC 6716, section 3.1), Vorbis from its
block size (the identification header gives the two sizes; the packet's mode says which,
as libvorbis numbers its two modes: 0 short, 1 long). The result is checked against the
encoder's own granule position at each of its page boundaries; where they disagree, the
encoder's pages are kept as they are.
"""

from __future__ import annotations

from radioagent.holding.ogg import MAX_SEGMENTS, build_page, read_packets, split_pages
from radioagent.oggtags import COMMENT_PACKET_INDEX, with_title_comment

PAGE_SECONDS = 0.25
SEGMENTS_PER_PAGE = 200  # leaves room under 255 for one more packet's lacing values
END_OF_STREAM = 0x04
HEADER_PACKETS = {"vorbis": 3, "opus": 2}
SAMPLE_RATE_OPUS = 48000


def _opus_samples(packet: bytes) -> int | None:
    if not packet:
        return 0  # an empty packet carries no audio (encoders end with one)
    config, code = packet[0] >> 3, packet[0] & 0x03
    if config < 12:
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:
        frame = (480, 960)[config % 2]
    else:
        frame = (120, 240, 480, 960)[config % 4]
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(packet) > 1:
        frames = packet[1] & 0x3F
    else:
        return None
    return frame * frames


def _vorbis_block_sizes(identification: bytes) -> tuple[int, int] | None:
    if len(identification) < 30 or identification[:7] != b"\x01vorbis":
        return None
    sizes = identification[28]
    return 1 << (sizes & 0x0F), 1 << (sizes >> 4)


def _packet_samples(codec: str, headers: list[bytes], audio: list[bytes]) -> list[int] | None:
    """Samples each audio packet adds to the stream's position, or None if unknown."""
    if codec == "opus":
        samples = [_opus_samples(packet) for packet in audio]
        return None if None in samples else [count or 0 for count in samples]
    sizes = _vorbis_block_sizes(headers[0])
    if sizes is None:
        return None
    counts = []
    previous = None
    for packet in audio:
        if not packet:
            counts.append(0)  # an empty packet carries no audio
            continue
        if packet[0] & 0x01:
            return None  # not an audio packet
        block = sizes[(packet[0] >> 1) & 0x01]
        counts.append(0 if previous is None else previous // 4 + block // 4)
        previous = block
    return counts


def _header_pages(pages: list[bytes], packets: list[bytes], title: str | None) -> list[bytes]:
    """The chain's header pages, with `title` as the only comment unless it is None: the
    identification page as it was, then a page for each other header packet."""
    comment = None if title is None else with_title_comment(packets[COMMENT_PACKET_INDEX], title)
    first_page_packets = read_packets(pages[:1])
    if comment is None or first_page_packets is None or len(first_page_packets[0]) != 1:
        return pages
    rest = [comment, *packets[COMMENT_PACKET_INDEX + 1 :]]
    if any(len(packet) // MAX_SEGMENTS + 1 > MAX_SEGMENTS for packet in rest):
        return pages  # a packet over one page: left as the encoder paged it
    serial = int.from_bytes(pages[0][14:18], "little")
    return [pages[0]] + [
        build_page(0, 0, serial, sequence, [packet]) for sequence, packet in enumerate(rest, 1)
    ]


def repaged(
    data: bytes,
    codec: str,
    samplerate: int,
    page_seconds: float = PAGE_SECONDS,
    title: str | None = None,
) -> bytes:
    """`data` (one Ogg Vorbis or Opus stream, headers first) with its audio in pages of at
    most `page_seconds` and, unless `title` is None, `title` as its comment (none for "");
    `data` itself when that cannot be done exactly."""
    header_count = HEADER_PACKETS.get(codec)
    pages = split_pages(data)
    read = read_packets(pages)
    if header_count is None or read is None:
        return data
    packets, marks = read
    header_pages = next(
        (index + 1 for index, mark in enumerate(marks) if mark.packets_ended >= header_count),
        None,
    )
    if header_pages is None or marks[header_pages - 1].packets_ended != header_count:
        return data  # the headers do not end on a page of their own
    audio = packets[header_count:]
    samples = _packet_samples(codec, packets[:header_count], audio)
    if samples is None or not any(audio):
        return data
    ends = [0]
    for count in samples:
        ends.append(ends[-1] + count)  # ends[n]: the position once n audio packets played
    for mark in marks[header_pages:-1]:  # the last page may trim the end: not compared
        if mark.granule >= 0 and ends[mark.packets_ended - header_count] != mark.granule:
            return data
    rate = SAMPLE_RATE_OPUS if codec == "opus" else samplerate
    per_page = max(1, int(page_seconds * rate))
    serial = int.from_bytes(pages[0][14:18], "little")
    headers = _header_pages(pages[:header_pages], packets[:header_count], title)
    out = bytearray(b"".join(headers))
    sequence = len(headers)
    # Empty packets carry no audio, and ffmpeg's Opus decoder refuses the one encoders end
    # a stream with ("Packet processing failed"): left out.
    kept = [index for index, packet in enumerate(audio) if packet]
    group: list[bytes] = []
    group_start = 0
    for position, index in enumerate(kept):
        group.append(audio[index])
        last = position == len(kept) - 1
        segments = sum(len(p) // MAX_SEGMENTS + 1 for p in group)
        # Closed before the next packet would take it past `per_page`.
        fuller = last or ends[kept[position + 1] + 1] - ends[group_start] > per_page
        if fuller or segments > SEGMENTS_PER_PAGE:
            # The last page's granule is where its audio ends, not the encoder's trimmed
            # one: silence loses nothing, and a listener who joined the chain mid-way got
            # timestamps going back (ffmpeg: "non monotonically increasing dts").
            flags = marks[-1].flags & END_OF_STREAM if last else 0
            out += build_page(flags, ends[index + 1], serial, sequence, group)
            sequence += 1
            group, group_start = [], index + 1
    return bytes(out)
