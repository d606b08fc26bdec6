"""A hundred deploys at once in one Slack channel, within Slack's rate limits, with the ack
still instant.

    .venv/bin/python bench/scale.py [--deploys 100] [--services 200] [--step 50] [--speed 1]

Everything runs on this machine:
  - the AWS sandbox (its own process) with `--services` ECS services split over two
    environments, rollouts slowed to `--step` seconds per scheduler step (a rollout is three
    steps: the default makes it about two and a half minutes, as real ECS rollouts take
    minutes);
  - a stand-in Slack Web API (in this process) that enforces Slack's published limits —
    chat.postMessage about once a second per channel with short bursts, chat.update 50 a
    minute per workspace — `--speed` times faster, answering 429 with Retry-After beyond them;
  - `kajitori serve` with the DynamoDB store (in the sandbox) and Slack configured at the
    same `--speed`.
`--deploys` slash commands `deploy SERVICE ENV v2` are sent at once in one channel; as soon
as they are acknowledged, a closed loop of `help` slash commands at concurrency 50 (`--flood`)
starts and runs until the last job's final
message has arrived (in its thread, or in a post telling several jobs' endings at once).
The sandbox's own rollout time is measured at the same time, on a service of its own that
kajitori does not touch. Slack's pace sets a floor of its own: each job needs a head
message in the channel, so the run cannot end sooner than `deploys ÷ post rate`
(`slack_floor_s`; `finish_ratio_floor` is the larger of it and the rollout, as a ratio).
The last line printed is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ack_latency import (
    BUSY,
    DEMO_CONFIG,
    MEMBER,
    SECRET,
    TOKEN,
    Signer,
    free_port,
    started,
)

from tests.support.fake_slack import FakeSlack, SlackLimits

REGION = "ap-northeast-1"
ENVIRONMENTS = ("staging", "production")
CONCURRENCY = 50


def role(name: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, __file__, "--role", name, "--port", str(port), *extra]


def service_names(count: int) -> dict[str, list[str]]:
    """`count` services named svc001…, the first half in staging, the rest in production."""
    half = count // 2
    return {
        "staging": [f"svc{i:03d}" for i in range(1, half + 1)],
        "production": [f"svc{i:03d}" for i in range(half + 1, count + 1)],
    }


def sandbox_role(port: int, services: int, step: float) -> None:
    """The sandbox with the bench's services, settled, then slowed to `step`."""
    import signal

    import boto3

    from sandbox import Sandbox, SandboxTiming
    from sandbox.seed import add_services_like

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    box = Sandbox(port=port, timing=SandboxTiming.fast())
    box.start()
    ecs = boto3.client(
        "ecs",
        endpoint_url=box.url,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    names = service_names(services)
    names["staging"].append("baseline")
    for env, wanted in names.items():
        add_services_like(ecs, env, wanted)
    for env, wanted in names.items():
        for chunk in range(0, len(wanted), 10):
            part = wanted[chunk : chunk + 10]
            while True:
                found = ecs.describe_services(cluster=env, services=part)["services"]
                if all(s["runningCount"] == 2 and len(s["deployments"]) == 1 for s in found):
                    break
                time.sleep(0.2)
    box.set_timing(SandboxTiming(ecs_task_step=step))
    print(f"READY {box.url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    box.stop()


async def sandbox_rollout_seconds(url: str) -> float:
    """How long the sandbox itself takes to roll out a new revision of one service."""
    from adapters.aws.clients import AwsClients

    clients = AwsClients(endpoint_url=url)
    try:
        ecs = await clients.client("ecs", REGION)
        service = (await ecs.describe_services(cluster="staging", services=["baseline"]))[
            "services"
        ][0]
        started_at = time.monotonic()
        await ecs.update_service(
            cluster="staging",
            service="baseline",
            taskDefinition=service["taskDefinition"],
            forceNewDeployment=True,
        )
        while True:
            found = (await ecs.describe_services(cluster="staging", services=["baseline"]))[
                "services"
            ][0]
            primary = next(d for d in found["deployments"] if d["status"] == "PRIMARY")
            if primary.get("rolloutState") == "COMPLETED" and len(found["deployments"]) == 1:
                return time.monotonic() - started_at
            await asyncio.sleep(0.1)
    finally:
        await clients.close()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


STORE_CALLS = re.compile(
    r'^kajitori_aws_call_duration_seconds_count\{[^}]*service="dynamodb"[^}]*\} (\S+)$'
)
LEASE_RENEWALS = re.compile(r"^kajitori_lease_renewals_total\{[^}]*\} (\S+)$")


async def store_calls(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """DynamoDB calls the server made so far, and how many of them renewed a lease (its
    /metrics)."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()

    def total(pattern: re.Pattern[str]) -> float:
        return sum(float(m.group(1)) for line in text.splitlines() if (m := pattern.match(line)))

    return total(STORE_CALLS), total(LEASE_RENEWALS)


async def post(
    session: aiohttp.ClientSession, url: str, signer: Signer, text: str
) -> tuple[float, bool]:
    """The ack's latency, and whether it refused the command as too busy."""
    body, headers = signer.request(text)
    begun = time.perf_counter()
    async with session.post(f"{url}/slack/events", data=body, headers=headers) as response:
        answer = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{text!r} answered {response.status}")
    return time.perf_counter() - begun, BUSY.encode() in answer


TOGETHER = "jobs ended together"


def together_posts(slack: FakeSlack) -> list[str]:
    """The blocks of the posts that told several jobs' final messages at once."""
    shown = (p.block_text() for p in slack.posted if p.thread_ts is None)
    return [blocks for blocks in shown if TOGETHER in blocks]


def finals(slack: FakeSlack) -> set[str]:
    """Threads (head ts) whose job's final message has arrived: in its thread, or in a post
    telling several at once, under the head's first line."""
    ended = {p.thread_ts for p in slack.posted if p.thread_ts and p.text.startswith(("✅", "❌"))}
    together = "\n".join(together_posts(slack))
    for head in slack.heads():
        if f"↳ {head.text.splitlines()[0]}" in together:
            ended.add(head.ts)
    return ended


async def main(args: argparse.Namespace) -> dict[str, Any]:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(variable, "bench")
    folder = Path(tempfile.mkdtemp(prefix="kajitori-scale-"))
    slack = await FakeSlack(SlackLimits(speed=args.speed)).start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(slack.stop)
        box = await stack.enter_async_context(
            started(
                "sandbox",
                role(
                    "sandbox",
                    free_port(),
                    "--services",
                    str(args.services),
                    "--step",
                    str(args.step),
                ),
            )
        )
        names = service_names(args.services)
        config = yaml.safe_load(DEMO_CONFIG.read_text())
        config["store"] = f"dynamodb://kajitori-scale?region={REGION}"
        config["slack"] = {
            "command": "/ops",
            "post_rate": 1.0 * args.speed,
            "updates_per_minute": 50.0 * args.speed,
        }
        config["access"]["members"][f"slack:{MEMBER}"] = ["sre"]
        for env in ENVIRONMENTS:
            # Deploys here are the bench's own: no approvals to wait for.
            config["environments"][env]["protected"] = False
            for name in names[env]:
                config["environments"][env]["services"][name] = {
                    "ecs": {"cluster": env, "service": name, "container": "app"},
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
        env_vars = {
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_API_URL": slack.api_url,
            "AWS_ENDPOINT_URL": box.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "KAJITORI_LOG_LEVEL": os.environ.get("KAJITORI_LOG_LEVEL", "WARNING"),
        }
        kajitori = await stack.enter_async_context(started("kajitori serve", serve, env_vars))
        url = f"http://127.0.0.1:{port}"
        pid = kajitori.process.pid
        signer = Signer("help", response_url=f"{slack.url}/hooks/bench")
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.flood + 10))
        )
        for _ in range(20):  # warm up
            await post(session, url, signer, "help")
        idle_rss = rss_kb(pid)
        calls_before, renewals_before = await store_calls(session, url)
        targets = [(env, name) for env in ENVIRONMENTS for name in names[env]][: args.deploys]

        done = asyncio.Event()
        acks: list[tuple[float, bool]] = []

        async def closed_loop() -> None:
            while not done.is_set():
                acks.append(await post(session, url, signer, "help"))

        begun = time.monotonic()
        baseline_task = asyncio.create_task(sandbox_rollout_seconds(box.url))
        deploy_acks = await asyncio.gather(
            *(post(session, url, signer, f"deploy {name} {env} v2") for env, name in targets)
        )
        if any(busy for _, busy in deploy_acks):
            raise RuntimeError("a deploy was refused as too busy")
        # The other commands start as the deploys are acknowledged: a closed loop that asks
        # far more than the work behind it can answer is refused in part from its first
        # second, and would be refused a deploy sent into it just the same.
        loop = [asyncio.create_task(closed_loop()) for _ in range(args.flood)]
        peak_rss = idle_rss
        heads: set[str] = set()
        # When each job's head and final message were first seen: how long each job ran.
        head_seen: dict[str, float] = {}
        final_seen: dict[str, float] = {}
        while True:
            peak_rss = max(peak_rss, rss_kb(pid))
            heads = {p.ts for p in slack.heads()}
            ended = finals(slack)
            now = time.monotonic()
            for ts in heads:
                head_seen.setdefault(ts, now)
            for ts in ended & heads:
                final_seen.setdefault(ts, now)
            if len(heads) >= len(targets) and heads <= ended:
                break
            if time.monotonic() - begun > args.limit:
                break
            await asyncio.sleep(0.25)
        last_final = time.monotonic() - begun
        done.set()
        await asyncio.gather(*loop)
        baseline = await baseline_task
        job_minutes = sum(final_seen[ts] - head_seen[ts] for ts in final_seen) / 60
        calls, renewals = await store_calls(session, url)
        calls, renewals = calls - calls_before, renewals - renewals_before
        lost = len(targets) - len(heads & finals(slack))
        # 429s after the first second of sending (the "first burst").
        after_burst = [at for at, _ in slack.rate_limited if at - slack.rate_limited[0][0] > 1]
        all_acks = sorted(seconds for seconds, _ in [*acks, *deploy_acks])
        post_rate = 1.0 * args.speed
        # A head per job, at the channel's pace; final messages can go together.
        floor = len(targets) / post_rate
        return {
            "deploys": len(targets),
            "services": args.services,
            "speed": args.speed,
            "acks": len(all_acks),
            "acks_refused_busy": sum(busy for _, busy in acks),
            "ack_p50_ms": round(statistics.median(all_acks) * 1000, 2),
            "ack_p99_ms": round(all_acks[int(0.99 * (len(all_acks) - 1))] * 1000, 2),
            "rate_limited": len(slack.rate_limited),
            "rate_limited_after_first_burst": len(after_burst),
            "lost": lost,
            "sandbox_rollout_s": round(baseline, 2),
            "first_final_s": round(min(final_seen.values(), default=begun) - begun, 2),
            "last_head_s": round(max(head_seen.values(), default=begun) - begun, 2),
            "last_final_s": round(last_final, 2),
            "finish_ratio": round(last_final / baseline, 3),
            "slack_floor_s": round(floor, 1),
            "finish_ratio_floor": round(max(floor, baseline) / baseline, 3),
            "slack_posts": len(slack.posted),
            "posts_telling_endings_together": len(together_posts(slack)),
            "slack_updates": len(slack.calls("chat.update")),
            "job_minutes": round(job_minutes, 1),
            "rss_idle_kb": idle_rss,
            "rss_per_job_kb": round((peak_rss - idle_rss) / len(targets), 1),
            "store_ops_per_job_minute": round(calls / job_minutes, 2),
            "lease_renewals_per_job_minute": round(renewals / job_minutes, 2),
            "other_store_ops_per_job_minute": round((calls - renewals) / job_minutes, 2),
        }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["sandbox"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--deploys", type=int, default=100)
    parser.add_argument("--step", type=float, default=50.0, help="sandbox ECS step, seconds")
    parser.add_argument("--speed", type=float, default=1.0, help="Slack's limits, times faster")
    parser.add_argument("--limit", type=float, default=1800, help="give up after, seconds")
    parser.add_argument(
        "--flood", type=int, default=CONCURRENCY, help="slash commands in the closed loop at once"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.role == "sandbox":
        sandbox_role(arguments.port, arguments.services, arguments.step)
    else:
        figures = asyncio.run(main(arguments))
        print(json.dumps(figures))
