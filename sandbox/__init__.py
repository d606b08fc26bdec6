"""The AWS sandbox: moto with kajitori's extensions, seeded with the demo world.

`Sandbox(port=5055).start()` serves the AWS APIs kajitori uses at `sandbox.url`; the
names of the seeded resources are in `SEED` (see `sandbox.seed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.seed import (
    ACCOUNT_ID,
    ENVIRONMENTS,
    REGION,
    SEED,
    DemoSeed,
    demo_database_secret_id,
)
from sandbox.timing import SandboxTiming

if TYPE_CHECKING:
    from sandbox.sandbox import Sandbox


def __getattr__(name: str) -> object:
    # moto takes seconds to import; only code that runs the sandbox should pay for it.
    if name == "Sandbox":
        from sandbox.sandbox import Sandbox

        return Sandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACCOUNT_ID",
    "ENVIRONMENTS",
    "REGION",
    "SEED",
    "DemoSeed",
    "Sandbox",
    "SandboxTiming",
    "demo_database_secret_id",
]
