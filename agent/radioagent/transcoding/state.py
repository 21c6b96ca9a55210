"""What the agent knows of a transcoder it runs, as the status, metrics and the cycle
planner read it."""

from __future__ import annotations

from dataclasses import dataclass

from radioagent.programmes.state import ProgrammeState


@dataclass
class TranscoderState:
    running: bool = False
    silent: bool | None = None  # None until Liquidsoap has said
    restarts: int = 0
    # Liquidsoap runs in a row that ended, or never began, before they were stable: at
    # GIVE_UP_AFTER_FAILURES the node gives its claim up.
    failures: int = 0
    connected: bool = False
    programme: ProgrammeState | None = None  # a programme's, as it last answered
