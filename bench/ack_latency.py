"""How fast `kajitori serve` acknowledges Slack slash commands, next to two references.

    .venv/bin/python bench/ack_latency.py [--rounds 3] [--requests 1500] [--jobs 20] [--text 'help status']

Everything runs on this machine, each server in its own process:
  - a fake Slack Web API (answers auth.test, chat.*, response_url posts; counts them),
  - the AWS sandbox with 20 extra ECS services whose rollouts are slowed down, so that the
    deploy jobs started on them keep running through the measurement,
  - `kajitori serve` (Slack configured, SQLite store),
  - (a) a bare slack-bolt AsyncApp with default settings whose /ops handler only acks,
  - (a') the smallest useful bot: the same, answering `help` through the response_url,
  - (b) a bare aiohttp handler that only checks the signature and answers: the floor.

Every target gets the same kind of signed slash command (each with its own trigger_id) at
concurrency 1 and 50, in rounds where the targets take turns (so that other work on the
machine disturbs them alike), first with nothing else running, then while 20 deploy jobs run
in kajitori. Reported per target: acknowledgement latency percentiles, acknowledged requests
per second (median of the rounds) and the server's CPU time per request. kajitori also does
the work behind each acknowledgement (the command runs, its answer is posted to the fake
Slack), which counts in its CPU time; how long after its last acknowledgement the last
answer was posted is reported too. Needs the `sandbox` extra (moto, boto3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "sandbox" / "demo.yaml"
SECRET = "bench-signing-secret-0123456789abcdef"
TOKEN = "xoxb-0000000000-1111111111-benchbottoken"
MEMBER = "UBENCH"
CHANNEL = "C0DEMO"
WARMUP = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve_forever(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"READY http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# the servers, each run as `bench/ack_latency.py --role ROLE --port P`


async def fake_slack(port: int) -> None:
    counts: dict[str, int] = {}
    sequence = iter(range(1, 1 << 62))

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        counts[request.path] = counts.get(request.path, 0) + 1
        if request.path.endswith("chat.postMessage") and b'"thread_ts"' not in body:
            counts["top-level messages"] = counts.get("top-level messages", 0) + 1
        if request.path.startswith("/hooks/") or (
            request.path.endswith("chat.postMessage") and b'"thread_ts"' not in body
        ):
            # An answer to a command: posted in the channel, or through its response_url.
            counts["answers"] = counts.get("answers", 0) + 1
        if request.path.endswith("auth.test"):
            return web.json_response(
                {"ok": True, "team_id": "T0DEMO", "user_id": "UKAJITORI", "bot_id": "BKAJITORI"}
            )
        return web.json_response({"ok": True, "ts": f"{1_700_000_000 + next(sequence)}.000100"})

    async def count(_request: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_get("/_counts", count)
    app.router.add_route("*", "/{tail:.*}", answer)
    await serve_forever(app, port)


async def bare_bolt(port: int, slack_api: str) -> None:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    bolt = AsyncApp(signing_secret=SECRET, client=AsyncWebClient(token=TOKEN, base_url=slack_api))

    @bolt.command("/ops")
    async def only_ack(ack: Any) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    await serve_forever(app, port)


HELP_TEXT = (
    "commands: help, status, deploy, rollback, scale out, scale up, limits, db open, "
    "db close, db list, sql, history, lock, unlock, approve, deny, jobs"
)


async def bolt_help(port: int, slack_api: str) -> None:
    """The smallest useful bot: acks, then answers `help` through the response_url."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    bolt = AsyncApp(signing_secret=SECRET, client=AsyncWebClient(token=TOKEN, base_url=slack_api))

    @bolt.command("/ops")
    async def answer_help(ack: Any, respond: Any) -> None:
        await ack()
        await respond(text=HELP_TEXT, response_type="in_channel")

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    await serve_forever(app, port)


async def bare_aiohttp(port: int) -> None:
    verifier = SignatureVerifier(SECRET)

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        valid = verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
        )
        return web.Response(status=200 if valid else 401)

    app = web.Application()
    app.router.add_post("/slack/events", events)
    await serve_forever(app, port)


def sandbox(port: int, jobs: int, step: float) -> None:
    import boto3

    from sandbox import Sandbox, SandboxTiming
    from sandbox.seed import add_services_like

    # Blocked before moto's threads start, so that only sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    box = Sandbox(port=port, timing=SandboxTiming.fast())
    box.start()
    ecs = boto3.client(
        "ecs",
        endpoint_url=box.url,
        region_name="ap-northeast-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    add_services_like(ecs, "staging", service_names(jobs))
    # Let them settle at the fast timing, then slow rollouts down for the measurement.
    while True:
        found = ecs.describe_services(cluster="staging", services=service_names(jobs))["services"]
        if all(s["runningCount"] == 2 and len(s["deployments"]) == 1 for s in found):
            break
        time.sleep(0.2)
    box.set_timing(SandboxTiming(ecs_task_step=step))
    print(f"READY {box.url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    box.stop()


def service_names(jobs: int) -> list[str]:
    return [f"bench{i:02d}" for i in range(1, jobs + 1)]


# the driver


@dataclass
class Process:
    name: str
    process: asyncio.subprocess.Process
    url: str


@contextlib.asynccontextmanager
async def started(
    name: str, args: list[str], env: dict[str, str] | None = None
) -> AsyncIterator[Process]:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(120):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{name} exited before it was ready")
                if line.startswith("READY "):
                    url = line.split()[1]
                    break
                if line.startswith("kajitori serving on "):
                    url = line.split()[-1]
                    break
        yield Process(name, process, url)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


def role(name: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, __file__, "--role", name, "--port", str(port), *extra]


class Signer:
    """Signed slash command bodies, each with its own trigger_id (so none is a duplicate)."""

    def __init__(self, text: str, response_url: str = "http://127.0.0.1:9/unused") -> None:
        self.text = text
        self.verifier = SignatureVerifier(SECRET)
        self.count = 0
        self.response_url = response_url

    def request(self, text: str | None = None) -> tuple[bytes, dict[str, str]]:
        self.count += 1
        body = urlencode(
            {
                "team_id": "T0DEMO",
                "channel_id": CHANNEL,
                "user_id": MEMBER,
                "command": "/ops",
                "text": text or self.text,
                "response_url": f"{self.response_url}/{self.count}",
                "trigger_id": f"{self.count}.{time.time_ns()}.bench",
            }
        )
        stamp = str(int(time.time()))
        return body.encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=stamp, body=body),
        }


@dataclass
class Target:
    name: str
    process: Process
    answers: bool  # kajitori answers each command (posted to the fake Slack)


@dataclass
class Run:
    latencies: list[float]
    seconds: float
    cpu_seconds: float  # the target process's CPU time, including answering for kajitori


@dataclass
class Figures:
    target: str
    period: str
    concurrency: int
    runs: list[Run]

    @property
    def latencies(self) -> list[float]:
        return [x for run in self.runs for x in run.latencies]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    @property
    def per_second(self) -> float:
        """The median over rounds: robust to a round disturbed by other work on the machine."""
        return statistics.median(len(r.latencies) / r.seconds for r in self.runs)

    @property
    def cpu_ms(self) -> float:
        return 1000 * sum(r.cpu_seconds for r in self.runs) / len(self.latencies)

    def row(self) -> str:
        return (
            f"| {self.target} | {self.period} | {self.concurrency} | {len(self.latencies)} | "
            f"{self.percentile(50):.2f} | {self.percentile(95):.2f} | {self.percentile(99):.2f} | "
            f"{max(self.latencies) * 1000:.1f} | {self.per_second:,.0f} | {self.cpu_ms:.2f} |"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "period": self.period,
            "concurrency": self.concurrency,
            "requests": len(self.latencies),
            "p50_ms": round(self.percentile(50), 3),
            "p95_ms": round(self.percentile(95), 3),
            "p99_ms": round(self.percentile(99), 3),
            "max_ms": round(max(self.latencies) * 1000, 3),
            "requests_per_second": round(self.per_second, 1),
            "cpu_ms_per_request": round(self.cpu_ms, 3),
        }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The start of kajitori's acknowledgement that refuses a command because too much work waits.
BUSY = "kajitori is busy"


async def fire(
    url: str, signer: Signer, count: int, concurrency: int
) -> tuple[list[float], float, int]:
    """Latencies, seconds taken, and how many acknowledgements refused as too busy (those
    commands get no answer later)."""
    prepared = [signer.request() for _ in range(count)]
    latencies: list[float] = []
    refused = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        queue = iter(prepared)

        async def worker() -> None:
            for body, headers in queue:
                began = time.perf_counter()
                async with session.post(
                    f"{url}/slack/events", data=body, headers=headers
                ) as response:
                    answer = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - began)
                if BUSY.encode() in answer:
                    nonlocal refused
                    refused += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - began, refused


async def counts(slack: Process) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(f"{slack.url}/_counts") as response:
        found: dict[str, int] = await response.json()
        return found


async def answered(slack: Process) -> int:
    return (await counts(slack)).get("answers", 0)


async def drain(slack: Process, expected: int) -> float:
    """Seconds until the fake Slack has received `expected` answers in all."""
    began = time.perf_counter()
    async with asyncio.timeout(300):
        # Another process: nothing to wait on but its count.
        while await answered(slack) < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return time.perf_counter() - began


def running_jobs(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0])


class Bench:
    def __init__(self, slack: Process, args: argparse.Namespace) -> None:
        self.slack = slack
        self.args = args
        # Answers through a response_url reach the fake Slack's /hooks/, where they count.
        self.signer = Signer(args.text, response_url=f"{slack.url}/hooks/command")
        self.figures: dict[tuple[str, str, int], Figures] = {}
        self.drains: dict[str, list[float]] = {}
        # Commands refused in their acknowledgement as too busy, per target/period/concurrency.
        self.refused: dict[tuple[str, str, int], int] = {}

    async def phase(self, target: Target, period: str, concurrency: int, count: int) -> None:
        before = await answered(self.slack) if target.answers else 0
        cpu = cpu_seconds(target.process.process.pid)
        latencies, seconds, refused = await fire(
            target.process.url, self.signer, count, concurrency
        )
        if refused:
            self.refused[(target.name, period, concurrency)] = (
                self.refused.get((target.name, period, concurrency), 0) + refused
            )
        if target.answers:
            # Its work is part of its cost, and must not spill into the next measurement.
            expected = before + count - refused
            self.drains.setdefault(period, []).append(await drain(self.slack, expected))
        run = Run(latencies, seconds, cpu_seconds(target.process.process.pid) - cpu)
        key = (target.name, period, concurrency)
        self.figures.setdefault(key, Figures(target.name, period, concurrency, [])).runs.append(run)

    async def period(self, targets: list[Target], period: str) -> None:
        for target in targets:
            await self.phase(target, period, 10, WARMUP)
            self.figures.pop((target.name, period, 10))
        for _ in range(self.args.rounds):
            for target in targets:
                await self.phase(target, period, 1, self.args.requests // 5)
                await self.phase(target, period, 50, self.args.requests)
        for target in targets:
            for concurrency in (1, 50):
                print(self.figures[(target.name, period, concurrency)].row(), flush=True)


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="kajitori-bench-"))
    async with contextlib.AsyncExitStack() as stack:
        slack = await stack.enter_async_context(
            started("fake Slack", role("fake-slack", free_port()))
        )
        box = await stack.enter_async_context(
            started(
                "sandbox",
                role("sandbox", free_port(), "--jobs", str(args.jobs), "--step", str(args.step)),
            )
        )
        config = yaml.safe_load(DEMO_CONFIG.read_text())
        config["store"] = f"sqlite://{folder / 'state.db'}"
        config["access"]["members"][f"slack:{MEMBER}"] = ["sre"]
        for name in service_names(args.jobs):
            config["environments"]["staging"]["services"][name] = {
                "ecs": {"cluster": "staging", "service": name, "container": "app"},
                "timeout": "30m",
            }
        config_path = folder / "kajitori.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        serve = [
            sys.executable,
            "-m",
            "adapters.cli",
            "serve",
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = {
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_API_URL": f"{slack.url}/api/",
            "AWS_ENDPOINT_URL": box.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "KAJITORI_LOG_LEVEL": "WARNING",
        }
        kajitori = await stack.enter_async_context(started("kajitori serve", serve, env))
        kajitori.url = f"http://127.0.0.1:{port}"
        bolt = await stack.enter_async_context(
            started("bare bolt", role("bare-bolt", free_port(), "--slack-api", f"{slack.url}/api/"))
        )
        helper = await stack.enter_async_context(
            started("bolt help", role("bolt-help", free_port(), "--slack-api", f"{slack.url}/api/"))
        )
        floor = await stack.enter_async_context(
            started("bare aiohttp", role("bare-aiohttp", free_port()))
        )
        targets = [
            Target("bare aiohttp (floor)", floor, answers=False),
            Target("bare slack-bolt AsyncApp", bolt, answers=False),
            Target("slack-bolt answering help", helper, answers=True),
            Target("kajitori serve", kajitori, answers=True),
        ]
        print(
            f"slash command text {args.text!r}; {args.rounds} rounds of {args.requests // 5} "
            f"requests at concurrency 1 and {args.requests} at concurrency 50 per target, "
            f"targets taking turns, after {WARMUP} warm-up requests each\n"
        )
        print(
            "| target | period | concurrency | requests | p50 ms | p95 ms | p99 ms | max ms "
            "| requests/s | CPU ms/request |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        bench = Bench(slack, args)
        await bench.period(targets, "idle")

        # The deploy jobs, started the way a member would: by slash command.
        deploys = Signer("")
        async with aiohttp.ClientSession() as session:
            for name in service_names(args.jobs):
                body, headers = deploys.request(f"deploy {name} staging v2")
                async with session.post(
                    f"{kajitori.url}/slack/events", data=body, headers=headers
                ) as r:
                    assert r.status == 200
        database = folder / "state.db"
        async with asyncio.timeout(60):
            while running_jobs(database) < args.jobs:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        loaded = f"{args.jobs} jobs"
        await bench.period(targets, loaded)
        still_running = running_jobs(database)

        print()
        print(f"deploy jobs still running at the end: {still_running} of {args.jobs}")
        for period, seconds in bench.drains.items():
            print(
                f"kajitori's last answer after its last acknowledgement ({period}): "
                f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s"
            )
        for (name, period, concurrency), refused in bench.refused.items():
            print(
                f"{name} ({period}, concurrency {concurrency}): {refused} commands refused "
                "in their acknowledgement as too busy"
            )
        by = bench.figures
        for period in ("idle", loaded):
            floor1 = by[("bare aiohttp (floor)", period, 1)]
            bolt50 = by[("bare slack-bolt AsyncApp", period, 50)]
            helper50 = by[("slack-bolt answering help", period, 50)]
            k1, k50 = by[("kajitori serve", period, 1)], by[("kajitori serve", period, 50)]
            print(
                f"{period}: kajitori p50 at concurrency 1 = {k1.percentile(50) / floor1.percentile(50):.2f}x "
                f"the floor's (target: within 3x); requests/s at concurrency 50 = "
                f"{k50.per_second / bolt50.per_second:.2f}x bare bolt's, "
                f"{k50.per_second / helper50.per_second:.2f}x bolt answering help's "
                "(target: at least 1x)"
            )
        if args.json:
            await asyncio.to_thread(
                Path(args.json).write_text,
                json.dumps(
                    {
                        "results": [f.as_dict() for f in by.values()],
                        "jobs_running_at_end": still_running,
                        "drain_seconds": bench.drains,
                    },
                    indent=2,
                ),
            )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=1500,
        help="requests per round at concurrency 50 (a fifth at 1)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, targets taking turns")
    parser.add_argument(
        "--jobs", type=int, default=20, help="deploy jobs running in the loaded run"
    )
    parser.add_argument(
        "--text", default="help status", help="the slash command's text (default: help status)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slack-api", help=argparse.SUPPRESS)
    parser.add_argument(
        "--step", type=float, default=30.0, help="seconds per ECS rollout step in the sandbox"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    arguments = parse()
    if arguments.role == "fake-slack":
        asyncio.run(fake_slack(arguments.port))
    elif arguments.role == "bare-bolt":
        asyncio.run(bare_bolt(arguments.port, arguments.slack_api))
    elif arguments.role == "bolt-help":
        asyncio.run(bolt_help(arguments.port, arguments.slack_api))
    elif arguments.role == "bare-aiohttp":
        asyncio.run(bare_aiohttp(arguments.port))
    elif arguments.role == "sandbox":
        sandbox(arguments.port, arguments.jobs, arguments.step)
    else:
        asyncio.run(main(arguments))
