"""Faults on purpose: a proxy between the bot and the AWS sandbox throttles or fails 30% of
the calls (the DynamoDB store's too). botocore's retries carry every command through; each
job still ends with a final message, success or a failure that says what AWS did, and
nothing is left running or locked. When AWS keeps failing past every retry, the answer
names the call and the error instead of an internal error."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from adapters.bootstrap import Bot, build_bot
from adapters.store.sqlite import SqliteStore
from bot.config import Settings, parse_config
from bot.dispatcher import Result
from bot.messages import Message
from bot.model import JobStatus, Origin, Outcome
from bot.polling import Polling
from tests.conftest import demo_data
from tests.reliability.helpers import samples, start_job
from tests.support.aws_proxy import AwsProxy
from tests.support.chat import RecordingChat

REGION = "ap-northeast-1"
ALICE = Origin(adapter="local", channel="local", member="local:alice")
BOB = Origin(adapter="local", channel="local", member="local:bob")
# A job ends long before this; a hang fails the test instead of stalling the run.
JOB_BOUND = 90.0
# At 30% a call fails all ten attempts once in 170,000: every command gets through, nearly
# always; when one does not, its answer must still be clear.
MAX_ATTEMPTS = 10
CLEAN_FAILURE = ("AWS ", "failed")
NEVER = ("internal error", "Traceback")


def faulty_config(store: str, retry_mode: str, max_attempts: int) -> Any:
    data = demo_data()
    data["store"] = store
    data["aws"] = {"retry_mode": retry_mode, "max_attempts": max_attempts}
    # Only the commands' calls go through the proxy here: no event queue is read.
    data.pop("events", None)
    return parse_config(data)


@contextlib.asynccontextmanager
async def bot_behind(
    proxy: AwsProxy, config: Any, chat: RecordingChat, **kwargs: Any
) -> AsyncIterator[Bot]:
    bot = await build_bot(
        config,
        Settings(aws_endpoint_url=proxy.url),
        chats=[chat],
        runner="faulty",
        polling=Polling(first=0.1, longest=0.5),
        **kwargs,
    )
    try:
        yield bot
    finally:
        await bot.close()


def assert_clear(text: str) -> None:
    for mark in NEVER:
        assert mark not in text, text


async def ended(bot: Bot, result: Result) -> JobStatus:
    assert result.job is not None, result.text
    return await asyncio.wait_for(bot.jobs.wait(result.job.id), JOB_BOUND)


@dataclass
class Outcomes:
    quick: list[Result]
    jobs: list[Result]
    statuses: list[JobStatus]
    retries: float
    took: float


async def run_through_faults(
    sandbox: Any,
    retry_mode: str,
    *,
    quick: list[str],
    jobs: list[str],
    approved: list[str] | None = None,
    dynamodb: bool = True,
) -> Outcomes:
    """Run `quick` commands and start `jobs` at once (and `approved` ones, which a second
    member approves) through the faulty proxy, with the store behind it too; wait for every
    job, bounded; check that nothing is left running or locked, and that every answer and
    every job's last word is clear. `dynamodb`: the store is DynamoDB behind the proxy too,
    else SQLite."""
    chat = RecordingChat()
    table = f"kajitori-faults-{secrets.token_hex(3)}"
    store = f"dynamodb://{table}?region={REGION}" if dynamodb else "sqlite://:memory:"
    config = faulty_config(store, retry_mode, MAX_ATTEMPTS)
    approved = approved or []
    async with AwsProxy(sandbox.url, latency=0.002, jitter=0.01, fault_rate=0.3, seed=30) as proxy:
        began = time.monotonic()
        async with bot_behind(proxy, config, chat) as bot:
            answers = await asyncio.gather(
                *(bot.dispatcher.handle(ALICE, text) for text in [*quick, *jobs, *approved])
            )
            started = answers[len(quick) : len(quick) + len(jobs)]
            for pending in answers[len(quick) + len(jobs) :]:
                assert pending.outcome is Outcome.PENDING and pending.request is not None
                started.append(await bot.dispatcher.handle(BOB, f"approve {pending.request.id}"))
            for result in started:
                assert result.outcome is Outcome.STARTED, result.text
            statuses = list(await asyncio.gather(*(ended(bot, r) for r in started)))
            store = bot.services.store
            assert await store.list_jobs(running_only=True) == []
            now = bot.services.clock.now()
            assert [lock for lock in await store.list_locks() if lock.expires_at > now] == []
            found = samples(bot.metrics.render()[0].decode())
        took = time.monotonic() - began
    retries = sum(v for (name, _), v in found.items() if name == "kajitori_aws_call_retries_total")
    outcomes = Outcomes(list(answers[: len(quick)]), started, statuses, retries, took)
    assert_every_answer_clear(outcomes, chat)
    faults = proxy.faults_injected
    assert len(faults) >= 0.2 * len(proxy.calls) > 0
    assert retries > 0
    print(
        f"{retry_mode}: {len(proxy.calls)} AWS calls, {len(faults)} faults "
        f"({dict(Counter(c.fault for c in faults))}), {retries:.0f} retries, "
        f"jobs {dict(Counter(s.value for s in statuses))}, "
        f"quick {dict(Counter(r.outcome.value for r in outcomes.quick))}, {took:.1f}s"
    )
    return outcomes


def assert_every_answer_clear(outcomes: Outcomes, chat: RecordingChat) -> None:
    for result in outcomes.quick:
        assert result.outcome in (Outcome.OK, Outcome.FAILED), result.text
        assert_clear(result.text)
        if result.outcome is Outcome.FAILED:
            assert all(mark in result.text for mark in CLEAN_FAILURE), result.text
    for result, status in zip(outcomes.jobs, outcomes.statuses, strict=True):
        assert result.job is not None
        assert status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
        [head] = [p for p in chat.posted if f"job J{result.job.id} started" in p.text]
        finals = [
            p.text
            for p in chat.posted
            if p.origin.thread == head.origin.thread
            and p.message.tone.value in ("success", "failure")
        ]
        assert len(finals) == 1, finals
        assert_clear(finals[0])
    for posted in chat.posted:
        assert_clear(posted.text)


async def test_with_30_percent_of_aws_calls_failing_every_job_still_ends_clearly(
    sandbox: Any,
) -> None:
    await run_through_faults(
        sandbox,
        "standard",
        quick=["status api staging", "status web staging", "limits staging"],
        jobs=["deploy api staging v2", "scale out worker staging 2"],
        approved=["deploy api production v3"],
    )


async def test_adaptive_retries_carry_commands_through_30_percent_of_failing_calls(
    sandbox: Any,
) -> None:
    # Adaptive mode also slows each client down after throttling (about 14 s for this load
    # with the DynamoDB store behind the proxy as well), so its store is SQLite here.
    await run_through_faults(
        sandbox,
        "adaptive",
        quick=["status api staging", "limits staging"],
        jobs=["scale out worker staging 2"],
        dynamodb=False,
    )


async def test_aws_failing_past_every_retry_ends_in_a_clear_failure_not_an_internal_error(
    sandbox: Any,
) -> None:
    chat = RecordingChat()
    config = faulty_config("sqlite://:memory:", "standard", 2)
    async with AwsProxy(sandbox.url, faults=("throttle",)) as proxy:
        store = await SqliteStore.open(":memory:")
        async with bot_behind(proxy, config, chat, store=store) as bot:
            proxy.fault_rate = 1.0
            status = await bot.dispatcher.handle(ALICE, "status api staging")
            assert status.outcome is Outcome.FAILED
            assert status.text == (
                "AWS DescribeServices failed after 2 attempts: ThrottlingException (Rate exceeded)"
            )
            # Two attempts at the service, as configured.
            assert len([c for c in proxy.calls if c.action == "DescribeServices"]) == 2

            # AWS starts throttling everything while a deploy watches its rollout.
            proxy.fault_rate = 0.0
            deploy = await bot.dispatcher.handle(ALICE, "deploy api staging v2")
            assert deploy.outcome is Outcome.STARTED, deploy.text
            await chat.wait_for(lambda posted: any("ECS deployment" in p.text for p in posted))
            proxy.fault_rate = 1.0
            assert await ended(bot, deploy) is JobStatus.FAILED
            final = chat.posted[-1].text
            assert final.startswith("deploy api v2 to staging failed: AWS ")
            assert "failed after 2 attempts: ThrottlingException (Rate exceeded)" in final
            assert_clear(final)
            [record] = await bot.services.store.list_deploys("api", "staging")
            assert record.outcome == "failed"
            assert await bot.services.store.list_jobs(running_only=True) == []
            assert await bot.services.store.list_locks() == []


async def test_the_end_of_a_job_is_recorded_though_the_store_refuses_it_for_a_while(
    sandbox: Any,
) -> None:
    """Once botocore's retry quota is spent (sustained faults), a failed write is not retried
    by botocore: the end of a job is written again by kajitori until the store takes it."""
    chat = RecordingChat()
    table = f"kajitori-end-{secrets.token_hex(3)}"
    config = faulty_config(f"dynamodb://{table}?region={REGION}", "standard", MAX_ATTEMPTS)

    async def body(_job: Any) -> Message:
        return Message(text="done")

    async with (
        AwsProxy(sandbox.url) as proxy,
        bot_behind(proxy, config, chat) as bot,
    ):
        # Every write that says the job succeeded (its record, its audit line) is refused
        # for a moment, as a store failing past its retries would.
        proxy.refuse.append(JobStatus.SUCCEEDED.value)
        job = await start_job(bot, body)

        async def heal() -> None:
            await asyncio.sleep(0.6)
            proxy.refuse.clear()

        healing = asyncio.create_task(heal())
        status = await asyncio.wait_for(bot.jobs.wait(job.id), JOB_BOUND)
        await healing
        assert status is JobStatus.SUCCEEDED
        refused = [c for c in proxy.calls if c.fault == "denied"]
        assert {c.action for c in refused} >= {"PutItem"}
        store = bot.services.store
        record = await store.get_job(job.id)
        assert record is not None and record.status is JobStatus.SUCCEEDED
        assert await store.list_jobs(running_only=True) == []
        audit = await store.list_audit()
        assert any(a.job_id == job.id and a.outcome == "job succeeded" for a in audit)


async def test_the_thread_s_write_retried_never_lands_after_the_end_of_its_job(
    sandbox: Any,
) -> None:
    """The job's thread is recorded while the job works; when that write is throttled and
    retried, the job's end must not be overwritten by it (an older record: still running)."""
    chat = RecordingChat()
    table = f"kajitori-order-{secrets.token_hex(3)}"
    config = faulty_config(f"dynamodb://{table}?region={REGION}", "standard", MAX_ATTEMPTS)
    holding = asyncio.Event()
    holding.set()
    passed = asyncio.Event()

    def thread_write(text: str) -> bool:
        """Throttle the write that records thread t1 on the running job, while holding."""
        if '"t1"' not in text or '"running"' not in text:
            return False
        if holding.is_set():
            return True
        passed.set()
        return False

    async def body(_job: Any) -> Message:
        return Message(text="done")

    async with (
        AwsProxy(sandbox.url) as proxy,
        bot_behind(proxy, config, chat) as bot,
    ):
        proxy.throttle_when = thread_write
        job = await start_job(bot, body)
        await asyncio.sleep(1.0)
        holding.clear()
        status = await asyncio.wait_for(bot.jobs.wait(job.id), JOB_BOUND)
        assert status is JobStatus.SUCCEEDED
        # The thread's write, held back and retried, has gone through by now.
        await asyncio.wait_for(passed.wait(), JOB_BOUND)
        await asyncio.sleep(0.5)
        assert [c for c in proxy.calls if c.fault == "throttle"]
        record = await bot.services.store.get_job(job.id)
        assert record is not None
        assert record.status is JobStatus.SUCCEEDED, record
        assert [t.thread for t in record.threads] == ["t1"]
        assert record.result == "done"
