"""How long `limits` takes over three regions when every AWS call is slow.

Starts the AWS sandbox, puts a delaying HTTP proxy in front of it (every request waits
`--latency` seconds, as if AWS were far away), builds the bot with three environments in
three regions, and runs `limits` several times. For each run it reports the wall time beside
the sum of the calls' latencies (what the same calls cost one after the other: the added
latency plus the sandbox's own time, which grows when it answers many calls at once) and the
slowest single call. The target: wall time under 3x the slowest single call.

    .venv/bin/python bench/limits_fanout.py [--latency 0.2] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

from adapters.bootstrap import running_bot
from bot.config import Settings, parse_config
from bot.model import Origin, Outcome
from sandbox import Sandbox, SandboxTiming
from tests.support.aws_proxy import AwsProxy

REGIONS = ("ap-northeast-1", "us-east-1", "eu-west-1")
TARGET_FACTOR = 3.0


def bench_config(store: str) -> dict[str, Any]:
    return {
        "store": store,
        "environments": {f"env-{region}": {"region": region, "services": {}} for region in REGIONS},
        "access": {"roles": {"sre": ["*"]}, "members": {"local:bench": ["sre"]}},
        "approvals": {"approvers": ["sre"]},
    }


async def one_run(bot: Any, proxy: AwsProxy) -> dict[str, float]:
    origin = Origin(adapter="local", channel="local", member="local:bench")
    proxy.reset()
    started = time.monotonic()
    result = await bot.dispatcher.handle(origin, "limits")
    wall = time.monotonic() - started
    if result.outcome is not Outcome.OK:
        raise SystemExit(f"limits did not answer: {result.text}")
    calls = proxy.calls
    return {
        "wall": wall,
        "calls": len(calls),
        "sum": sum(c.seconds for c in calls),
        "added": sum(c.added for c in calls),
        "slowest": max(c.seconds for c in calls),
        "rows": len(result.messages[0].table.rows) if result.messages[0].table else 0,
    }


def line(label: str, run: dict[str, float]) -> str:
    return (
        f"{label:<8} wall {run['wall']:6.3f}s  calls {int(run['calls']):3d}  "
        f"sum of latencies {run['sum']:7.3f}s (added {run['added']:5.2f}s)  "
        f"slowest call {run['slowest']:6.3f}s  "
        f"wall/slowest {run['wall'] / run['slowest']:4.2f}  rows {int(run['rows'])}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds added per call")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    sandbox = Sandbox(port=0, timing=SandboxTiming.fast())
    sandbox.start()
    try:
        async with AwsProxy(sandbox.url, latency=args.latency) as proxy:
            with tempfile.TemporaryDirectory() as folder:
                config = parse_config(bench_config(f"sqlite:///{folder}/bench.db"))
                settings = Settings(aws_endpoint_url=proxy.url)
                async with running_bot(config, settings, runner="bench") as bot:
                    print(
                        f"limits over {len(REGIONS)} regions ({', '.join(REGIONS)}), "
                        f"{args.latency * 1000:.0f} ms added to every AWS call"
                    )
                    cold = await one_run(bot, proxy)
                    print(line("cold", cold) + "  (first run: AWS clients are created)")
                    runs = [await one_run(bot, proxy) for _ in range(args.runs)]
                    for i, run in enumerate(runs, 1):
                        print(line(f"run {i}", run))
    finally:
        sandbox.stop()
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(line("median", median))
    ratio = median["wall"] / median["slowest"]
    met = ratio < TARGET_FACTOR
    print(
        f"target wall < {TARGET_FACTOR:g}x slowest call: {'met' if met else 'NOT met'} "
        f"({ratio:.2f}x); sequential would take {median['sum'] / median['wall']:.1f}x longer"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
