"""Listeners sent to each node since its last status report: the predictive part of
utilization. State without I/O: the front door records sends, the loop records reports."""

from __future__ import annotations


class SentSinceReport:
    def __init__(self) -> None:
        self._sent: dict[str, int] = {}
        self._report_revision: dict[str, int] = {}

    def on_report(self, node: str, revision: int) -> None:
        """A new report already counts the listeners sent before it: start over."""
        if self._report_revision.get(node) != revision:
            self._report_revision[node] = revision
            self._sent[node] = 0

    def on_sent(self, node: str) -> None:
        self._sent[node] = self._sent.get(node, 0) + 1

    def sent(self, node: str) -> int:
        return self._sent.get(node, 0)
