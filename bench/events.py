"""How fast AWS events reach the chat through the queue.

    .venv/bin/python bench/events.py [--events 1000] [--json]

The AWS sandbox runs in this process's threads (moto's server on loopback, the demo seed:
the EventBridge rule and the SQS queue `kajitori-events`); one bot (one replica, SQLite
store) long-polls the queue and posts to a chat adapter that notes when each event arrived.
A second rule sends this benchmark's events (source `bench.kajitori`) to the same queue;
kajitori has no format for them, so each is posted as one compact line naming its event id.

1. latency: the bot is running; the events are put on the bus with PutEvents, 10 per call,
   at `--rate` events per second; for each event, the time from its PutEvents call to its
   post (p50, p90, p99, max).
2. throughput: the bot is stopped while the events are put in the queue; a bot is started
   and drains the backlog. Reported: the events per second one replica handles (claim in
   the store, read, route, format, post: its own work, from the poller's step timings),
   and the end-to-end drain rate, which includes the emulator's receives and deletes.

moto's SQS scans the whole queue on every receive, so it slows down as a queue grows; the
latency run paces its events to keep the queue short, and the end-to-end drain rate
measures the emulator more than kajitori (the step timings say how much).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import yaml

from adapters.bootstrap import build_bot
from adapters.store.sqlite import SqliteStore
from bot.config import Settings, parse_config
from bot.messages import Message
from bot.model import Origin
from sandbox import Sandbox, SandboxTiming

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"
QUEUE = "https://sqs.ap-northeast-1.amazonaws.com/123456789012/kajitori-events"


class TimingChat:
    """Notes when each event's line is posted."""

    name = "local"

    def __init__(self) -> None:
        self.posted_at: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0

    def _note(self, message: Message) -> None:
        text = message.text
        if "(event " in text:
            self.posted_at[text.rsplit("(event ", 1)[1].rstrip(")")] = time.perf_counter()
            if len(self.posted_at) >= self.expected:
                self.done.set()

    async def reply(self, origin: Origin, message: Message) -> None:
        self._note(message)

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        return origin

    async def announce(self, channel: str, message: Message) -> Origin:
        self._note(message)
        return Origin(adapter="local", channel=channel, member="kajitori", thread="t")

    async def edit(self, posted: Origin, message: Message) -> Origin:
        return posted


def config(store: str) -> Any:
    data = yaml.safe_load((ROOT / "sandbox" / "demo.yaml").read_text())
    data["store"] = store
    data["events"].update(
        {
            "default_channel": "local:bench",
            "wait": "1s",
            "rate_limit": {"posts": 1_000_000, "per": "1m"},
        }
    )
    return parse_config(data)


def put_all(events: Any, count: int, tag: str, rate: float = 0.0) -> dict[str, float]:
    """PutEvents, 10 per call (at `rate` events per second, 0: at once); when each event's
    call was made, by event id."""
    returned: dict[str, float] = {}
    begin = time.perf_counter()
    for start in range(0, count, 10):
        if rate > 0:
            due = begin + start / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        entries = [
            {
                "Source": "bench.kajitori",
                "DetailType": "Bench Event",
                "Detail": json.dumps({"n": n, "tag": tag}),
            }
            for n in range(start, min(start + 10, count))
        ]
        # From the call, not its answer: moto delivers to the queue before it answers, so
        # a fast replica may post an event before its PutEvents call has returned.
        called = time.perf_counter()
        answer = events.put_events(Entries=entries)
        for entry in answer["Entries"]:
            returned[entry["EventId"]] = called
    return returned


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(count: int, rate: float) -> dict[str, Any]:
    sandbox = Sandbox(port=0, timing=SandboxTiming.fast())
    await asyncio.to_thread(sandbox.start)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    events = boto3.client("events", region_name=REGION, endpoint_url=sandbox.url)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=sandbox.url)
    arn = sqs.get_queue_attributes(QueueUrl=QUEUE, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="bench", EventPattern=json.dumps({"source": ["bench.kajitori"]}))
    events.put_targets(Rule="bench", Targets=[{"Id": "q", "Arn": arn}])
    settings = Settings(aws_endpoint_url=sandbox.url, aws_region=REGION)
    results: dict[str, Any] = {"events": count, "rate": rate}
    try:
        with tempfile.TemporaryDirectory() as folder:
            # 1. latency, with the bot running
            chat = TimingChat()
            chat.expected = count
            store = await SqliteStore.open(str(Path(folder) / "a.db"))
            bot = await build_bot(config("sqlite://:memory:"), settings, chats=[chat], store=store)
            try:
                await asyncio.sleep(1.0)
                returned = await asyncio.to_thread(put_all, events, count, "latency", rate)
                await asyncio.wait_for(chat.done.wait(), timeout=600)
            finally:
                await bot.close()
            latencies = [
                (chat.posted_at[i] - returned[i]) * 1000 for i in returned if i in chat.posted_at
            ]
            results["latency_ms"] = {
                "p50": round(percentile(latencies, 50), 1),
                "p90": round(percentile(latencies, 90), 1),
                "p99": round(percentile(latencies, 99), 1),
                "max": round(max(latencies), 1),
                "mean": round(statistics.fmean(latencies), 1),
            }
            # 2. throughput: a backlog in the queue, one replica drains it
            await asyncio.to_thread(put_all, events, count, "backlog")
            chat = TimingChat()
            chat.expected = count
            store = await SqliteStore.open(str(Path(folder) / "b.db"))
            started = time.perf_counter()
            bot = await build_bot(config("sqlite://:memory:"), settings, chats=[chat], store=store)
            try:
                await asyncio.wait_for(chat.done.wait(), timeout=1800)
                poller = bot.event_poller
                assert poller is not None
                steps = dict(poller.seconds)
            finally:
                await bot.close()
            took = max(chat.posted_at.values()) - started
            # Its own work: claim, read, route, format, post (receive and delete are SQS's).
            results["events_per_second_one_replica"] = round(count / steps["handle"], 1)
            results["drain"] = {
                "seconds": round(took, 1),
                "events_per_second_end_to_end": round(count / took, 1),
                "seconds_per_step": {k: round(v, 2) for k, v in steps.items()},
            }
    finally:
        await asyncio.to_thread(sandbox.stop)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--json", action="store_true", help="JSON only")
    args = parser.parse_args()
    results = asyncio.run(run(args.events, args.rate))
    if not args.json:
        print(__doc__.splitlines()[0])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
