"""When to have a hung Icecast restarted.

Icecast 2.4.4 can deadlock: a config reload (SIGHUP) that drops the last reference to a
mount's URL authenticator joins that authenticator's thread while holding its lock, and a
source being authenticated at that moment never finishes. The process stays up, holds
its port and answers nothing: systemd sees nothing wrong, and the node's listeners hear
nothing. Found by the fault campaign (seed 71209, 5 nodes): a new leader's Icecast
reloaded as studios reconnected. The agent, unprivileged, asks systemd for a restart
through a file a path unit watches (the icecast role's icecast2-restart.path)."""

from __future__ import annotations

# How long counts as hung is the config's icecast.hung_restart_seconds (15 s by default).
# Within one hang (no answer since): a restart takes seconds, asking sooner helps nothing.
RESTART_AGAIN_AFTER_S = 60.0


def restart_due(
    unresponsive_since: float | None,
    last_request_at: float | None,
    now: float,
    hung_after: float,
) -> bool:
    """Whether to ask for a restart now. `unresponsive_since`: when the run of timed-out
    reads began (None: it answered, or refused, last time; a refusal is a stopped or
    restarting Icecast, which systemd or the operator handles). `last_request_at`: the
    request made in this run, if any (an answer in between starts a new run)."""
    if unresponsive_since is None or now - unresponsive_since < hung_after:
        return False
    return last_request_at is None or now - last_request_at >= RESTART_AGAIN_AFTER_S
