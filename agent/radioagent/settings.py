"""Cluster settings kept in etcd (`config` key), changed by `radioctl config set`. Pure.

The load-balancing policy is autoradio's composable string: filters, then scorers, then
one choice, e.g. `listeners_available,listeners_score,weighted`.

Limits and timing are optional: unset, each agent keeps its own configuration. Set
limits are what a node gets unless its own configuration says otherwise (a Raspberry Pi
and a VPS differ); set timing wins over every agent's own, since the lease rules only
hold if every node follows the same ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import yaml

from radioagent.config import SECTIONS, Limits, Timing, parse_section
from radioagent.deadair import DEFAULT_DEAD_AIR_SECONDS
from radioagent.validation import ValidationError, check_int

POLICY_FILTERS = ("listeners_available", "bandwidth_available")
POLICY_SCORERS = ("listeners_score", "bandwidth_score")
POLICY_CHOICES = ("weighted", "best", "random")
DEFAULT_POLICY = "listeners_available,listeners_score,weighted"
UNSET_WORDS = ("null", "none", "unset")
DEAD_AIR_MAXIMUM = 86_400
DEFAULT_DNS_TTL = 20
DNS_TTL_MAXIMUM = 3600
DEFAULT_HLS_TARGET_SECONDS = 4  # Radio France's segments; players wait about 3 of them
HLS_TARGET_RANGE = (1, 10)
DEFAULT_HLS_WINDOW = 6
HLS_WINDOW_RANGE = (3, 20)


@dataclass(frozen=True)
class ClusterSettings:
    policy: str = DEFAULT_POLICY
    proxy_everything: bool = False
    no_redirect_user_agents: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    timing: Timing | None = None
    dead_air_seconds: int = DEFAULT_DEAD_AIR_SECONDS  # a mount without audio this long alerts
    dns_ttl_seconds: int = DEFAULT_DNS_TTL  # how long resolvers keep the zone's answers
    hls_target_seconds: int = DEFAULT_HLS_TARGET_SECONDS  # an HLS segment's length
    hls_window: int = DEFAULT_HLS_WINDOW  # segments in an HLS media playlist

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def flat(self) -> dict[str, Any]:
        """One entry per settable key; None means unset (each agent's own configuration)."""
        values = asdict(self)
        limits = values.pop("limits")
        values.update({f"limits.{key}": value for key, value in limits.items()})
        timing = values.pop("timing") or dict.fromkeys(asdict(Timing()))
        values.update({f"timing.{key}": value for key, value in timing.items()})
        values["no_redirect_user_agents"] = list(values["no_redirect_user_agents"])
        return dict(sorted(values.items()))

    def limits_for(self, own: Limits) -> Limits:
        """A node's limits: its own configuration first, then the cluster's."""
        return Limits(
            max_listeners=own.max_listeners
            if own.max_listeners is not None
            else self.limits.max_listeners,
            bandwidth_kbps=own.bandwidth_kbps
            if own.bandwidth_kbps is not None
            else self.limits.bandwidth_kbps,
        )

    def timing_for(self, own: Timing) -> Timing:
        return self.timing if self.timing is not None else own


def policy_problems(policy: Any) -> list[str]:
    known = ", ".join(POLICY_FILTERS + POLICY_SCORERS + POLICY_CHOICES)
    if not isinstance(policy, str) or not policy:
        return [f"policy: {policy!r} is not a comma-separated list (known: {known})"]
    parts = [part.strip() for part in policy.split(",")]
    problems = [
        f"policy: {part!r} is not a filter, scorer or choice (known: {known})"
        for part in parts
        if part not in POLICY_FILTERS + POLICY_SCORERS + POLICY_CHOICES
    ]
    choices = [part for part in parts if part in POLICY_CHOICES]
    if not problems and (len(choices) != 1 or parts[-1] not in POLICY_CHOICES):
        problems.append(
            f"policy: {policy!r} must end with exactly one choice ({', '.join(POLICY_CHOICES)})"
        )
    return problems


def settings_problems(settings: ClusterSettings) -> list[str]:
    problems = policy_problems(settings.policy)
    if not isinstance(settings.proxy_everything, bool):
        problems.append(f"proxy_everything: {settings.proxy_everything!r} is not true or false")
    agents = settings.no_redirect_user_agents
    if not isinstance(agents, tuple) or not all(
        isinstance(agent, str) and 0 < len(agent) <= 200 for agent in agents
    ):
        problems.append("no_redirect_user_agents: expected a list of 1-200 character strings")
    problems += filter(
        None,
        [
            check_int("dead_air_seconds", settings.dead_air_seconds, 1, DEAD_AIR_MAXIMUM),
            check_int("dns_ttl_seconds", settings.dns_ttl_seconds, 1, DNS_TTL_MAXIMUM),
            check_int("hls_target_seconds", settings.hls_target_seconds, *HLS_TARGET_RANGE),
            check_int("hls_window", settings.hls_window, *HLS_WINDOW_RANGE),
        ],
    )
    # Limits and timing are checked as an agent's own config checks them (one table).
    problems += parse_section("limits", SECTIONS["limits"], asdict(settings.limits))[1]
    if settings.timing is not None:
        problems += parse_section("timing", SECTIONS["timing"], asdict(settings.timing))[1]
    return problems


SETTABLE_KEYS = (
    "policy",
    "proxy_everything",
    "no_redirect_user_agents",
    "dead_air_seconds",
    "dns_ttl_seconds",
    "hls_target_seconds",
    "hls_window",
    "limits.max_listeners",
    "limits.bandwidth_kbps",
    "timing",
    "timing.ttl",
    "timing.loop_wait",
    "timing.retry_timeout",
)


def with_setting(settings: ClusterSettings, key: str, raw_value: str) -> ClusterSettings:
    """The settings with `key` set from its command-line text; ValidationError names the
    key if it is unknown or the result breaks a rule. Limits and timing take `none` to
    hand the decision back to each agent's own configuration; one timing key set while
    timing is unset starts from the defaults, so the three always travel together."""
    if key not in SETTABLE_KEYS:
        raise ValidationError([f"{key}: unknown setting (known: {', '.join(SETTABLE_KEYS)})"])
    unset = raw_value.strip().lower() in UNSET_WORDS
    # Any: the value is checked by settings_problems below, whatever YAML made of it.
    value: Any = raw_value if key == "policy" else yaml.safe_load(raw_value)
    if key == "timing" or (unset and key.startswith("timing.")):
        if not unset:
            raise ValidationError(["timing: only 'none' (set timing.ttl and the others alone)"])
        updated = replace(settings, timing=None)
    elif key.startswith("timing."):
        base = settings.timing or Timing()
        updated = replace(settings, timing=replace(base, **{key[7:]: value}))
    elif key.startswith("limits."):
        limit = None if unset else value
        updated = replace(settings, limits=replace(settings.limits, **{key[7:]: limit}))
    elif key == "no_redirect_user_agents":
        agents = value if isinstance(value, list) else [value]
        updated = replace(settings, no_redirect_user_agents=tuple(agents))
    else:
        updated = replace(settings, **{key: value})
    problems = settings_problems(updated)
    if problems:
        raise ValidationError(problems)
    return updated


def settings_from_json(text: str | bytes | None) -> ClusterSettings:
    if text is None:
        return ClusterSettings()
    try:
        decoded = json.loads(text)
        agents = decoded.get("no_redirect_user_agents", [])
        if not isinstance(agents, list):
            raise TypeError("no_redirect_user_agents is not a list")
        timing = decoded.pop("timing", None)
        # Keys a newer radioctl wrote are ignored, so a rolling upgrade keeps old agents
        # on the cluster's settings instead of refusing them all.
        known = {field.name for field in fields(ClusterSettings)}
        settings = ClusterSettings(
            **{
                **{key: value for key, value in decoded.items() if key in known},
                "limits": Limits(**decoded.get("limits", {})),
                "timing": None if timing is None else Timing(**timing),
                "no_redirect_user_agents": tuple(decoded.get("no_redirect_user_agents", ())),
            }
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise ValidationError([f"settings: not valid ({error})"]) from error
    problems = settings_problems(settings)
    if problems:
        raise ValidationError(problems)
    return settings
