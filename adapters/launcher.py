"""The `kajitori` command's entry point: loads the command line with the collector off.

The modules loaded at start (kajitori's, pydantic's, botocore's) make objects that live as
long as the process; the collector, running while they load, walks them again and again
for nothing (a few full collections, ~25 ms of a one-shot `kajitori run`). Once they are
loaded they are moved out of its reach and it is turned back on. Only the command itself
does this: a process that imports `adapters.cli` (tests, `python -m adapters.cli`) keeps
its collector as it was.
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    try:
        from adapters.cli import main as command_line
    finally:
        gc.freeze()
        gc.enable()
    return command_line()
