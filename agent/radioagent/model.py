"""Mount specs and node status: the data the cluster shares through etcd. No I/O."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from radioagent.names import MOUNT_NAME_DESCRIPTION, MOUNT_NAME_PATTERN, mount_name_problem
from radioagent.programmes.spec import Programme, parse_programme, programme_problems
from radioagent.programmes.state import programme_reports_valid
from radioagent.validation import (
    ValidationError,
    check_choice,
    check_int,
    check_string,
    text_problem,
    unknown_keys,
)

# Paths the front door answers itself (/status, /health, ...), so no mount may take them.
RESERVED_MOUNT_NAMES = frozenset({"health", "ready", "leader", "metrics", "status", "api"})
# Icecast's Basic auth and XML config carry these safely; ':' would split user from password.
CREDENTIAL_PATTERN = r"[A-Za-z0-9._~!@#$%^&*+=,;?-]{1,128}"
CREDENTIAL_DESCRIPTION = "1-128 printable characters without spaces, quotes, ':', '<' or '>'"

CODEC_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "vorbis": "application/ogg",
    "opus": "application/ogg",
    "flac": "application/ogg",
}
# ffmpeg's demuxer for each codec's container. Liquidsoap's input.http names it so that
# ffmpeg does not probe: probing an MP3 stream took 4.5 s before the first sample, against
# 0.34 s named (bench/input_start), and that wait is both a programme's start-up and its
# inputs' latency.
CODEC_DEMUXERS = {"mp3": "mp3", "aac": "aac", "vorbis": "ogg", "opus": "ogg", "flac": "ogg"}
SAMPLERATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_SAMPLERATES = (8000, 12000, 16000, 24000, 48000)
# Agent-owned mounts next to each public mount /<name>:
# /_live/<name> takes the source, on the leader only; every node's /<name> relays it.
# /_holding/<name> carries local silence, the fallback while the relay is away.
# Encoded as UTF-8 (at most 4 bytes a character), a title's ICY block stays within the
# 255 x 16 bytes its length byte can say.
MAX_TITLE_CHARACTERS = 1000
LIVE_MOUNT_PREFIX = "/_live/"
HOLDING_MOUNT_PREFIX = "/_holding/"


@dataclass(frozen=True)
class AudioFormat:
    """What a mount carries; the holding mount must match it (Icecast drops listeners on
    a fallback in another container)."""

    codec: str = "mp3"
    bitrate_kbps: int = 128
    samplerate: int = 44100
    channels: int = 2

    @property
    def content_type(self) -> str:
        return CODEC_CONTENT_TYPES[self.codec]

    @property
    def demuxer(self) -> str:
        return CODEC_DEMUXERS[self.codec]


@dataclass(frozen=True)
class Transcode:
    """A mount made by re-encoding another (run by the transcoding feature)."""

    parent: str
    format: AudioFormat


@dataclass(frozen=True)
class MountSpec:
    name: str
    source_password: str
    source_username: str = "source"
    format: AudioFormat = field(default_factory=AudioFormat)
    fallback: str | None = None
    max_listeners: int | None = None
    relay_url: str | None = None
    transcode: Transcode | None = None
    radio: str | None = None
    holding_title: str = ""  # the title while the mount plays its holding audio
    programme: Programme | None = None  # made by the cluster from other mounts (programmes/)

    @property
    def produced(self) -> bool:
        """Made by one Liquidsoap in the cluster (a transcode or a programme), not by a
        studio: such a mount is claimed and run like a transcoder."""
        return self.transcode is not None or self.programme is not None

    @property
    def made_from(self) -> tuple[str, ...]:
        """The mounts this one is made from (a transcode's parent, a programme's inputs)."""
        if self.transcode is not None:
            return (self.transcode.parent,)
        return self.programme.input_names if self.programme is not None else ()

    @property
    def path(self) -> str:
        return f"/{self.name}"

    @property
    def live_path(self) -> str:
        return f"{LIVE_MOUNT_PREFIX}{self.name}"

    @property
    def holding_path(self) -> str:
        return f"{HOLDING_MOUNT_PREFIX}{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """The spec as parse_mount takes it (and as it is stored, decoded)."""
        return asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """The spec without its source password: what may be shown."""
        fields = self.as_dict()
        del fields["source_password"]
        return fields

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))


# Constant-time comparisons: the answer's timing must not leak the mount's credentials.
def password_matches(mount: MountSpec, password: str) -> bool:
    """Whether `password` is the mount's source password."""
    return hmac.compare_digest(password.encode(), mount.source_password.encode())


def credentials_match(mount: MountSpec, user: str, password: str) -> bool:
    """Whether `user` and `password` are the mount's source credentials. Both are
    compared whatever the user (`&`, not `and`): a wrong user answers no faster."""
    user_matches = hmac.compare_digest(user.encode(), mount.source_username.encode())
    return user_matches & password_matches(mount, password)


MOUNT_KEYS = {
    "name",
    "source_password",
    "source_username",
    "format",
    "fallback",
    "max_listeners",
    "relay_url",
    "transcode",
    "radio",
    "holding_title",
    "programme",
}
FORMAT_KEYS = {"codec", "bitrate_kbps", "samplerate", "channels"}
TRANSCODE_KEYS = {"parent", "format"}


def _format_problems(where: str, given: Any) -> list[str]:
    if not isinstance(given, dict):
        return [f"{where}: {given!r} is not a mapping (keys: {', '.join(sorted(FORMAT_KEYS))})"]
    problems = unknown_keys(f"{where}.", given, FORMAT_KEYS)
    checks = [
        check_choice(f"{where}.codec", given.get("codec", "mp3"), tuple(CODEC_CONTENT_TYPES)),
        check_int(f"{where}.bitrate_kbps", given.get("bitrate_kbps", 128), 8, 512),
        check_int(f"{where}.channels", given.get("channels", 2), 1, 2),
    ]
    samplerate = given.get("samplerate", 44100)
    allowed = OPUS_SAMPLERATES if given.get("codec") == "opus" else SAMPLERATES
    if not isinstance(samplerate, int) or isinstance(samplerate, bool) or samplerate not in allowed:
        checks.append(
            f"{where}.samplerate: {samplerate!r} is not one of {', '.join(map(str, allowed))}"
            + (" (Opus)" if allowed is OPUS_SAMPLERATES else "")
        )
    return problems + [problem for problem in checks if problem]


# LAME: MPEG-1 at 32/44.1/48 kHz, MPEG-2 at 16/22.05/24 kHz, MPEG-2.5 at 8/11.025/12 kHz,
# each with its own bitrates.
MP3_BITRATES = {
    (32000, 44100, 48000): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (16000, 22050, 24000): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (8000, 11025, 12000): (8, 16, 24, 32, 40, 48, 56, 64),
}
# Ranges the Debian libraries accept (kbps).
BITRATE_RANGES = {"opus": (6, 510), "vorbis": (32, 500), "aac": (8, 320)}


def encodable_problems(where: str, audio: AudioFormat) -> list[str]:
    """What Debian's Liquidsoap 2.1 cannot encode (fields named from `where`)."""
    if audio.codec == "mp3":
        allowed = next(rates for group, rates in MP3_BITRATES.items() if audio.samplerate in group)
        if audio.bitrate_kbps not in allowed:
            return [
                f"{where}.bitrate_kbps: MP3 at {audio.samplerate} Hz takes one of "
                f"{', '.join(map(str, allowed))}, not {audio.bitrate_kbps}"
            ]
    elif audio.codec in BITRATE_RANGES:
        low, high = BITRATE_RANGES[audio.codec]
        if not low <= audio.bitrate_kbps <= high:
            return [
                f"{where}.bitrate_kbps: {audio.codec} takes {low}-{high} kbps, "
                f"not {audio.bitrate_kbps}"
            ]
    return []


def _relay_url_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 1024:
        return f"relay_url: {value!r} is not a URL of at most 1024 characters"
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port == -1:
        return (
            "relay_url: not an http:// URL with a host and a valid port (Icecast relays plain http)"
        )
    return None


def _transcode_problems(transcode: Any, name: Any, relay_url: Any) -> list[str]:
    if transcode is None:
        return []
    if not isinstance(transcode, dict):
        return [f"transcode: {transcode!r} is not a mapping (keys: parent, format)"]
    problems = unknown_keys("transcode.", transcode, TRANSCODE_KEYS)
    if "parent" not in transcode:
        problems.append("transcode.parent: missing")
    else:
        parent_problem = check_string(
            "transcode.parent", transcode["parent"], MOUNT_NAME_PATTERN, "a mount name", 63
        )
        problems += [parent_problem] if parent_problem else []
        if transcode["parent"] == name:
            problems.append(f"transcode.parent: {name!r} cannot transcode itself")
    problems += _format_problems("transcode.format", transcode.get("format", {}))
    if relay_url is not None:
        problems.append("relay_url: a transcoded mount cannot also relay a URL")
    return problems


def _optional_field_problems(given: dict) -> list[str]:
    checks = []
    if given.get("fallback") is not None:
        checks.append(mount_name_problem("fallback", given["fallback"]))
        if given["fallback"] == given.get("name"):
            checks.append(f"fallback: {given['fallback']!r} cannot fall back to itself")
    if given.get("max_listeners") is not None:
        checks.append(check_int("max_listeners", given["max_listeners"], 0, 1_000_000))
    if "holding_title" in given:
        checks.append(text_problem("holding_title", given["holding_title"], MAX_TITLE_CHARACTERS))
    if given.get("radio") is not None:
        checks.append(
            check_string(
                "radio",
                given["radio"],
                MOUNT_NAME_PATTERN,
                f"a radio name: {MOUNT_NAME_DESCRIPTION}",
                63,
            )
        )
    return [problem for problem in checks if problem]


def parse_mount(given: Any) -> MountSpec:
    """A MountSpec from decoded JSON/YAML, or ValidationError naming every bad field."""
    if not isinstance(given, dict):
        raise ValidationError([f"mount: {given!r} is not a mapping"])
    problems = unknown_keys("", given, MOUNT_KEYS)
    problems += [f"{key}: missing" for key in ("name", "source_password") if key not in given]
    name = given.get("name", "")
    checks = [
        check_string("name", name, MOUNT_NAME_PATTERN, MOUNT_NAME_DESCRIPTION, 63)
        if "name" in given
        else None,
        "name: '..' is not allowed"
        if isinstance(name, str) and ".." in name and re.fullmatch(MOUNT_NAME_PATTERN, name)
        else None,
        f"name: {name!r} is reserved for the front door's own pages"
        if name in RESERVED_MOUNT_NAMES
        else None,
        check_string(
            "source_password",
            given.get("source_password", "x"),
            CREDENTIAL_PATTERN,
            CREDENTIAL_DESCRIPTION,
            128,
            secret=True,
        ),
        check_string(
            "source_username",
            given.get("source_username", "source"),
            CREDENTIAL_PATTERN,
            CREDENTIAL_DESCRIPTION,
            128,
        ),
        _relay_url_problem(given.get("relay_url")),
    ]
    problems += [problem for problem in checks if problem]
    problems += _optional_field_problems(given)
    problems += _format_problems("format", given.get("format", {}))
    transcode = given.get("transcode")
    problems += _transcode_problems(transcode, name, given.get("relay_url"))
    programme = given.get("programme")
    problems += _programme_problems(given, name)
    if problems:
        raise ValidationError(problems)
    audio_format = AudioFormat(**given.get("format", {}))
    if programme is not None:
        problems += encodable_problems("format", audio_format)  # the programme's encoder
    if transcode is not None:
        # What the transcoder encodes is what the mount carries (and its holding silence).
        transcoded = AudioFormat(**transcode.get("format", {}))
        problems += encodable_problems("transcode.format", transcoded)
        if "format" in given and audio_format != transcoded:
            problems.append(
                "format: a transcoded mount's format is its transcode.format; leave format out"
            )
        audio_format = transcoded
    if problems:
        raise ValidationError(problems)
    return MountSpec(
        name=name,
        source_password=given["source_password"],
        source_username=given.get("source_username", "source"),
        format=audio_format,
        fallback=given.get("fallback"),
        max_listeners=given.get("max_listeners"),
        relay_url=given.get("relay_url"),
        transcode=Transcode(transcode["parent"], AudioFormat(**transcode.get("format", {})))
        if transcode is not None
        else None,
        radio=given.get("radio"),
        holding_title=given.get("holding_title", ""),
        programme=parse_programme(programme) if programme is not None else None,
    )


def _programme_problems(given: dict, name: Any) -> list[str]:
    programme = given.get("programme")
    if programme is None:
        return []
    problems = programme_problems(programme, name)
    problems += [
        f"{key}: a programme is made from its inputs; it cannot also have {key}"
        for key in ("transcode", "relay_url")
        if given.get(key) is not None
    ]
    return problems


def mount_from_json(text: str | bytes) -> MountSpec:
    try:
        decoded = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError([f"mount: not JSON ({error})"]) from error
    return parse_mount(decoded)


def cross_mount_problems(mounts: dict[str, MountSpec]) -> list[str]:
    """Rules between mounts: a fallback or transcode parent must exist, and a fallback
    must carry the same container (Icecast drops listeners across containers)."""
    problems = []
    for mount in mounts.values():
        if mount.fallback is not None:
            target = mounts.get(mount.fallback)
            if target is None:
                problems.append(f"{mount.name}: fallback {mount.fallback!r} is not a mount")
            elif target.format.content_type != mount.format.content_type:
                problems.append(
                    f"{mount.name}: fallback {mount.fallback!r} carries "
                    f"{target.format.content_type}, not {mount.format.content_type}"
                )
        if mount.transcode is not None and mount.transcode.parent not in mounts:
            problems.append(
                f"{mount.name}: transcode parent {mount.transcode.parent!r} is not a mount"
            )
        if mount.programme is not None:
            problems += [
                f"{mount.name}: programme.inputs[{index}]: {name!r} is not a mount"
                for index, name in enumerate(mount.programme.input_names)
                if name not in mounts
            ]
    return problems + _production_cycles(mounts)


def _production_cycles(mounts: dict[str, MountSpec]) -> list[str]:
    """Mounts made, through transcodes and programme inputs, from themselves: each would
    wait for its own audio forever. One problem per cycle, named from its first mount."""
    problems = []
    reported: set[str] = set()
    for start in sorted(mounts):
        path = [start]
        seen = {start}
        cycle = _cycle_from(start, mounts, path, seen)
        if cycle is not None and not reported.intersection(cycle):
            reported.update(cycle)
            first = mounts[cycle[0]]
            field = "transcode.parent" if first.transcode is not None else "programme.inputs"
            problems.append(f"{cycle[0]}: {field}: made from itself through {' <- '.join(cycle)}")
    return problems


def _cycle_from(
    name: str, mounts: dict[str, MountSpec], path: list[str], seen: set[str]
) -> list[str] | None:
    """Depth first along what `name` is made from; the cycle back to path[0], if any."""
    mount = mounts.get(name)
    for source in mount.made_from if mount is not None else ():
        if source == path[0]:
            return [*path, source]
        if source in seen:
            continue
        seen.add(source)
        found = _cycle_from(source, mounts, [*path, source], seen)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class NodeStatus:
    """What each agent publishes about its node, refreshed every loop."""

    name: str
    address: str
    icecast_port: int
    icecast_up: bool
    role: str  # "leader" or "replica"
    epoch: int | None
    listeners: dict[str, int]
    bandwidth_kbps: float
    bandwidth_limit_kbps: int | None
    listener_limit: int | None
    draining: bool
    agent_version: str
    public_address: str | None = None  # where listeners are sent; None: `address`
    front_door_ports: tuple[int, ...] = ()
    tls_ports: tuple[int, ...] = ()  # its HTTPS ports
    https_name: str | None = None  # the name its certificate covers: HTTPS redirects go there
    mounts: tuple[str, ...] = ()  # mounts its Icecast serves now (live or holding)
    transcoders: tuple[str, ...] = ()  # transcoded mounts whose Liquidsoap runs here
    silent_mounts: tuple[str, ...] = ()  # of those, the ones whose input is dead air
    live_mounts: tuple[str, ...] = ()  # mounts whose live audio reaches its Icecast now
    hls_mounts: tuple[str, ...] = ()  # mounts HLS players play from this node now
    # Per mount it cuts for HLS, its newest segment's sequence and discontinuity number:
    # a node that starts cutting numbers on from it, as players moving between nodes need.
    hls_numbers: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Wall-clock times of what changes a stream on every node, as this node saw them:
    # when it began to lead (None: it does not), and when each mount's live audio here
    # last came or went. HLS marks discontinuities by the leader's.
    leading_since: float | None = None
    air_changed: dict[str, float] = field(default_factory=dict)
    # Per programme whose Liquidsoap runs here, what it says: the input on air, the
    # preferred one, blank, loudness, each input's state (ProgrammeState.to_dict()).
    programmes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # When `listeners` were counted (wall clock): the traffic prediction forgets only
    # the listeners it sent well before that. Not news by itself: a status that differs
    # only here is not published again.
    counted_at: float | None = None
    # Transcoded mounts and programmes whose Liquidsoap kept failing here: their claims
    # were given up, and other nodes take them (transcoding/assignment.py).
    given_up: tuple[str, ...] = ()
    # Programmes whose standby Liquidsoap runs here (not failing): this node takes them
    # first when they come free, and an owner that leads hands them over to it.
    standbys: tuple[str, ...] = ()

    def without_count_time(self) -> NodeStatus:
        return replace(self, counted_at=None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def listener_address(self) -> str:
        return self.public_address or self.address


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


# Field checks for a node status written by any agent version: unknown keys are ignored
# (a newer agent may add some), missing optional ones take their defaults.
_STATUS_FIELDS: dict[str, tuple[Callable[[Any], bool], Any]] = {
    "name": (lambda value: isinstance(value, str) and bool(value), None),
    "address": (lambda value: isinstance(value, str) and bool(value), None),
    "icecast_port": (lambda value: _is_int(value) and 0 < value < 65536, None),
    "icecast_up": (lambda value: isinstance(value, bool), False),
    "role": (lambda value: isinstance(value, str), "replica"),
    "epoch": (lambda value: value is None or _is_int(value), None),
    "listeners": (
        lambda value: (
            isinstance(value, dict)
            and all(isinstance(key, str) and _is_int(count) for key, count in value.items())
        ),
        {},
    ),
    "bandwidth_kbps": (lambda value: _is_int(value) or isinstance(value, float), 0.0),
    "bandwidth_limit_kbps": (lambda value: value is None or _is_int(value), None),
    "listener_limit": (lambda value: value is None or _is_int(value), None),
    "draining": (lambda value: isinstance(value, bool), False),
    "agent_version": (lambda value: isinstance(value, str), "unknown"),
    "public_address": (
        lambda value: value is None or (isinstance(value, str) and bool(value)),
        None,
    ),
    "front_door_ports": (
        lambda value: (
            isinstance(value, list) and all(_is_int(port) and 0 < port < 65536 for port in value)
        ),
        [],
    ),
    "tls_ports": (
        lambda value: (
            isinstance(value, list) and all(_is_int(port) and 0 < port < 65536 for port in value)
        ),
        [],
    ),
    "https_name": (
        lambda value: value is None or (isinstance(value, str) and bool(value)),
        None,
    ),
    "mounts": (_is_name_list, []),
    "transcoders": (_is_name_list, []),
    "silent_mounts": (_is_name_list, []),
    "live_mounts": (_is_name_list, []),
    "hls_mounts": (_is_name_list, []),
    "hls_numbers": (
        lambda value: (
            isinstance(value, dict)
            and all(
                isinstance(key, str)
                and isinstance(pair, list)
                and len(pair) == 2
                and all(_is_int(number) and number >= 0 for number in pair)
                for key, pair in value.items()
            )
        ),
        {},
    ),
    "leading_since": (lambda value: value is None or _is_number(value), None),
    "air_changed": (
        lambda value: (
            isinstance(value, dict)
            and all(isinstance(key, str) and _is_number(at) for key, at in value.items())
        ),
        {},
    ),
    "programmes": (programme_reports_valid, {}),
    "counted_at": (lambda value: value is None or _is_number(value), None),
    "given_up": (_is_name_list, []),
    "standbys": (_is_name_list, []),
}
_REQUIRED_STATUS_FIELDS = ("name", "address", "icecast_port")


def status_json_without_count_time(text: str) -> str:
    """A published status as `NodeStatus.without_count_time().to_json()` would write it."""
    decoded = json.loads(text)
    if isinstance(decoded, dict):
        decoded["counted_at"] = None
    return json.dumps(decoded, sort_keys=True, separators=(",", ":"))


def node_status_from_json(text: str | bytes) -> NodeStatus:
    try:
        decoded = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError([f"node status: not JSON ({error})"]) from error
    if not isinstance(decoded, dict):
        raise ValidationError(["node status: not a JSON object"])
    problems = [
        f"node status: {key}: missing" for key in _REQUIRED_STATUS_FIELDS if key not in decoded
    ]
    values = {}
    for key, (valid, default) in _STATUS_FIELDS.items():
        value = decoded.get(key, default)
        if key in decoded and not valid(value):
            problems.append(f"node status: {key}: {value!r} is not valid")
        values[key] = value
    if problems:
        raise ValidationError(problems)
    values["front_door_ports"] = tuple(values["front_door_ports"])
    values["tls_ports"] = tuple(values["tls_ports"])
    values["hls_numbers"] = {name: tuple(pair) for name, pair in values["hls_numbers"].items()}
    for key, (valid, _) in _STATUS_FIELDS.items():
        if valid is _is_name_list:
            values[key] = tuple(values[key])
    return NodeStatus(**values)
