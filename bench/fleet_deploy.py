"""How long a fleet deploy takes next to the sandbox's own time, and how many AWS calls it
makes per instance.

    .venv/bin/python bench/fleet_deploy.py [--instances 20] [--batch 25%] [--rounds 3]

The AWS sandbox runs in this process with its default timing (a target drains for the
group's deregistration delay, at most 3 s; an SSM invocation runs 2 s; a registered target
is `initial` for 2 s). The `web` fleet in staging grows to `--instances` SSM-managed
instances, all healthy in its target group, and the whole bot (built by the composition
root, SQLite store in memory) deploys a new version in batches of `--batch`, no canary.

The sandbox's own time for one batch is what AWS makes a batch wait: draining, then the
command, then the health checks. The job's wall time is compared with the number of
batches times that; the difference is what the job adds (its polling and its own calls).
Every AWS call the bot makes is counted with a botocore event hook, by operation, and
divided by the number of instances. Printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import yaml

from adapters.bootstrap import build_bot
from bot.config import Settings, parse_config
from bot.model import JobStatus, Origin
from bot.polling import Polling
from sandbox import Sandbox, SandboxTiming
from sandbox.seed import SEED

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"
ALICE = Origin(adapter="local", channel="local", member="local:alice")
# How the job looks at AWS while it waits: often, so that it adds little to each wait.
POLLING = Polling(first=0.05, factor=1.5, longest=0.25, report_every=30.0)


def boto(sandbox: Sandbox, service: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=sandbox.url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def grow_fleet(sandbox: Sandbox, count: int) -> list[str]:
    """`count` running web instances in staging, SSM-managed, tagged v1, all healthy."""
    ec2, elbv2 = boto(sandbox, "ec2"), boto(sandbox, "elbv2")
    existing: list[str] = list(sandbox.seeded["web_instance_ids/staging"])
    extra = count - len(existing)
    if extra > 0:
        # One at a time: moto gives the instance profile to the first instance of a call only.
        for _ in range(extra):
            launched = ec2.run_instances(
                LaunchTemplate={"LaunchTemplateName": SEED.web_launch_template("staging")},
                SubnetId=sandbox.seeded["subnet_ids"][0],
                IamInstanceProfile={"Name": SEED.instance_profile},
                MinCount=1,
                MaxCount=1,
            )
            existing.extend(i["InstanceId"] for i in launched["Instances"])
        time.sleep(sandbox.timing.instance_transition + 0.2)  # pending -> running
    arn = elbv2.describe_target_groups(Names=[SEED.web_target_group("staging")])["TargetGroups"][0][
        "TargetGroupArn"
    ]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in existing])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        if len(health) == len(existing) and all(
            d["TargetHealth"]["State"] == "healthy" for d in health
        ):
            return existing
        time.sleep(0.2)
    raise RuntimeError("the fleet did not become healthy")


def per_batch_seconds(sandbox: Sandbox, batch: int) -> float:
    """What AWS (the sandbox) makes one batch wait, with nothing else counted."""
    timing = sandbox.timing
    elbv2 = boto(sandbox, "elbv2")
    arn = elbv2.describe_target_groups(Names=[SEED.web_target_group("staging")])["TargetGroups"][0][
        "TargetGroupArn"
    ]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    delay = float(
        next(a["Value"] for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds")
    )
    draining = min(delay, timing.deregistration_delay) if delay > 0 else 0.0
    waves = math.ceil(batch / 50)  # SendCommand's MaxConcurrency (50 by default)
    return draining + waves * timing.ssm_command + timing.target_health_check


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.counting = False

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-call", self._count, f"bench-count-{id(self)}")

    def _count(self, model: Any, **_: Any) -> None:
        if self.counting:
            self.calls[f"{model.service_model.service_name}:{model.name}"] += 1


async def one_round(sandbox: Sandbox, instances: int, batch: str) -> dict[str, Any]:
    sandbox.reset()
    ids = grow_fleet(sandbox, instances)
    data = yaml.safe_load((ROOT / "sandbox" / "demo.yaml").read_text())
    data["store"] = "sqlite://:memory:"
    data["environments"]["staging"]["services"]["web"]["deploy"] = {
        "ssm_document": SEED.web_document,
        "batch": batch,
    }
    data["environments"]["staging"]["services"]["web"]["timeout"] = "30m"
    config = parse_config(data)
    counter = CallCounter()
    bot = await build_bot(
        config, Settings(aws_endpoint_url=sandbox.url), runner="bench", polling=POLLING
    )
    bot.aws.add_client_hook(counter.hook)
    try:
        deploy = config.service("web", "staging").fleet_deploy
        assert deploy is not None
        size = deploy.batch_size(len(ids))
        batches = math.ceil(len(ids) / size)
        counter.counting = True
        planned = time.monotonic()
        result = await bot.dispatcher.handle(ALICE, "deploy web staging v2")
        started = time.monotonic()
        assert result.job is not None, result.messages
        status = await bot.jobs.wait(result.job.id)
        ended = time.monotonic()
        counter.counting = False
        if status is not JobStatus.SUCCEEDED:
            raise RuntimeError(f"the deploy ended {status.value}")
        own = per_batch_seconds(sandbox, size)
        wall = ended - started
        total_calls = sum(counter.calls.values())
        return {
            "instances": len(ids),
            "batch_size": size,
            "batches": batches,
            "plan_seconds": round(started - planned, 3),
            "job_seconds": round(wall, 3),
            "sandbox_seconds_per_batch": round(own, 3),
            "sandbox_seconds": round(own * batches, 3),
            "ratio": round(wall / (own * batches), 3),
            "aws_calls": total_calls,
            "aws_calls_per_instance": round(total_calls / len(ids), 2),
            "aws_calls_by_operation": dict(sorted(counter.calls.items())),
        }
    finally:
        await bot.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--batch", default="25%")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # The progress lines go to no chat here; the notifier would warn about each.
    logging.getLogger("bot.notifier").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    sandbox = Sandbox(port=0, timing=SandboxTiming())
    sandbox.start()
    try:
        rounds = [await one_round(sandbox, args.instances, args.batch) for _ in range(args.rounds)]
    finally:
        sandbox.stop()
    ratios = [r["ratio"] for r in rounds]
    median = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
    print(
        json.dumps(
            {
                "instances": args.instances,
                "batch": args.batch,
                "rounds": len(rounds),
                "job_seconds": [r["job_seconds"] for r in rounds],
                "sandbox_seconds": median["sandbox_seconds"],
                "ratio_median": statistics.median(ratios),
                "ratio_max": max(ratios),
                "plan_seconds_median": statistics.median(r["plan_seconds"] for r in rounds),
                "aws_calls_per_instance_median": statistics.median(
                    r["aws_calls_per_instance"] for r in rounds
                ),
                "median_round": median,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
