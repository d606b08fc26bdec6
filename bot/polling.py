"""How a job waits for AWS: it looks quickly at first, then less often, and speaks up when
nothing has changed for a while. One schedule for every wait (rollouts, scaling, resizes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Polling:
    first: float = 0.2  # seconds before the first look
    factor: float = 1.5  # each quiet look waits this much longer than the last
    longest: float = 5.0  # the longest wait between two looks
    report_every: float = 30.0  # a progress line at least this often while nothing changes

    def delays(self) -> list[float]:
        """The first delays, up to and including the longest; the longest repeats after."""
        delays, delay = [], self.first
        while delay < self.longest:
            delays.append(delay)
            delay *= self.factor
        delays.append(self.longest)
        return delays
