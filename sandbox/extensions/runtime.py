"""State shared by every extension: the timing in force, the clock and one lock.

moto keeps its backends in process-wide dictionaries and the extensions patch moto's
classes, so this state is process-wide too: all sandboxes in one process share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.timing import SandboxTiming


class Runtime:
    def __init__(self) -> None:
        self.timing = SandboxTiming()
        # Held while the extensions read or change simulated state, so that the
        # server's request threads never see a half-applied step.
        self.lock = threading.RLock()
        self._instant_depth = 0

    def now(self) -> float:
        return time.time()

    @property
    def instant(self) -> bool:
        """True while seeding: every transition started now completes at once."""
        return self._instant_depth > 0

    @contextmanager
    def instantly(self) -> Iterator[None]:
        with self.lock:
            self._instant_depth += 1
        try:
            yield
        finally:
            with self.lock:
                self._instant_depth -= 1

    def delay(self, seconds: float) -> float:
        """The duration a transition starting now lasts: `seconds`, or 0 while seeding."""
        return 0.0 if self.instant else seconds

    def deadline(self, seconds: float) -> float:
        return self.now() + self.delay(seconds)
