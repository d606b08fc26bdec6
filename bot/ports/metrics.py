"""The metrics port: what the core counts. The composition root builds the implementation
(Prometheus, in adapters/metrics.py); a bot built without one counts nothing."""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    def command_handled(self, command: str, outcome: str) -> None:
        """One chat command answered: its name ("unknown" when it did not parse)."""

    def job_finished(self, outcome: str, seconds: float) -> None: ...

    def ack_sent(self, adapter: str, seconds: float) -> None:
        """An adapter answered a request from its chat or webhook sender."""

    def lease_renewed(self, what: str) -> None:
        """A running job's heartbeat renewed a lease in the store: "job" or "lock"."""


class NoMetrics:
    def command_handled(self, command: str, outcome: str) -> None:
        pass

    def job_finished(self, outcome: str, seconds: float) -> None:
        pass

    def ack_sent(self, adapter: str, seconds: float) -> None:
        pass

    def lease_renewed(self, what: str) -> None:
        pass
