"""Durable jobs: two replicas (two whole bots) share one store; when the one running a job
stops, the other takes the job over, goes on where it was, and never repeats a change.

The replicas talk to the AWS sandbox over HTTP and share a SQLite file, as two processes on
one machine would. A replica that died is simulated by the records it would have left at
each step (job, lock, deploy record), the way they were written by a real run; the real
SIGKILL of a `kajitori serve` process is in test_replicas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.bootstrap import Bot, build_bot
from adapters.store.sqlite import SqliteStore
from bot.clock import Clock
from bot.config import Config, Settings
from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.messages import Message
from bot.model import DeployRecord, JobRecord, JobStatus, Origin, Outcome
from bot.polling import Polling
from bot.ports.ecs import image_with_tag
from sandbox import SandboxTiming
from tests.reliability.helpers import ALICE, samples, start_job, value
from tests.support.chat import Posted, RecordingChat
from tests.support.clock import ShiftedClock

REGION = "ap-northeast-1"
BOB = Origin(adapter="local", channel="local", member="local:bob")
LEASE = timedelta(seconds=1)
TAKEOVER_INTERVAL = timedelta(seconds=0.1)


@contextlib.asynccontextmanager
async def replica(
    config: Config,
    sandbox: Any,
    state: Path,
    runner: str,
    chat: RecordingChat,
    *,
    clock: Clock | None = None,
    takes_over: bool = True,
) -> AsyncIterator[Bot]:
    """One replica as `kajitori serve` builds it: its own store connection and AWS clients,
    and (like a server) the takeover loop."""
    store = await SqliteStore.open(str(state))
    bot = await build_bot(
        config,
        Settings(aws_endpoint_url=sandbox.url),
        store=store,
        chats=[chat],
        runner=runner,
        lock_lease=LEASE,
        clock=clock,
        polling=Polling(first=0.1, longest=0.3),
    )
    if takes_over:
        bot.background.add(asyncio.create_task(bot.jobs.take_over_forever(TAKEOVER_INTERVAL)))
    try:
        yield bot
    finally:
        await bot.close()


def texts(chat: RecordingChat, thread: str | None) -> list[str]:
    return chat.texts(thread)


def said(chat: RecordingChat, fragment: str) -> bool:
    return any(fragment in p.text for p in chat.posted)


async def ecs_service(bot: Bot, env: str = "staging") -> dict[str, Any]:
    ecs = await bot.aws.client("ecs", REGION)
    described = await ecs.describe_services(cluster=env, services=["api"])
    service: dict[str, Any] = described["services"][0]
    return service


async def revisions(bot: Bot) -> list[str]:
    ecs = await bot.aws.client("ecs", REGION)
    listed = await ecs.list_task_definitions(familyPrefix="api-staging")
    arns: list[str] = listed["taskDefinitionArns"]
    return arns


async def lock_holder(bot: Bot, service: str = "api") -> Any:
    return await bot.kernel.locks.holder(LockKey(service, "staging"))


async def left_by_a_dead_replica(
    bot: Bot,
    *,
    command: str,
    title: str,
    kind: str,
    state: dict[str, Any],
    lock: str = "api",
) -> JobRecord:
    """The job and lock a replica that died mid-job leaves behind: a running job whose lease
    has run out, and its lock (still within its own lease)."""
    services = bot.services
    job_id = await services.store.next_id("job")
    held = await bot.kernel.locks.acquire(
        LockKey(lock, "staging"),
        "local:alice",
        reason=title,
        lease=timedelta(seconds=30),
        job_id=job_id,
    )
    assert held is not None
    now = services.clock.now()
    thread = ALICE.in_thread(f"dead-{job_id}")
    record = JobRecord(
        id=job_id,
        command=command,
        title=title,
        member="local:alice",
        origin=ALICE,
        threads=[thread],
        created_at=now - timedelta(seconds=20),
        updated_at=now - timedelta(seconds=5),
        runner="replica-dead",
        lease_expires=now - timedelta(seconds=3),
        state=state,
        kind=kind,
        deadline=now + timedelta(minutes=10),
        locks=[held],
    )
    await services.store.put_job(record)
    return record


async def deploy_record(bot: Bot, job_id: int) -> DeployRecord:
    """The deploy record a deploy writes first, before it changes anything."""
    current = await bot.services.ecs.describe_service(
        REGION,
        bot.config.service("api", "staging").ecs,  # type: ignore[arg-type]
    )
    record = DeployRecord(
        id=await bot.services.store.next_id("deploy"),
        service="api",
        env="staging",
        version="v2",
        previous_version=current.image_tag,
        previous_task_definition=current.task_definition,
        triggered_by="local:alice",
        job_id=job_id,
        started_at=bot.services.clock.now(),
    )
    await bot.services.store.put_deploy(record)
    return record


def deploy_state(image: str, **steps: Any) -> dict[str, Any]:
    return {
        "kind": "deploy",
        "service": "api",
        "env": "staging",
        "version": "v2",
        "image": image_with_tag(image, "v2"),
        **steps,
    }


async def test_a_replica_that_stops_hands_its_deploy_to_one_that_watches_it_to_the_end(
    sandbox: Any, demo_config: Config, tmp_path: Path
) -> None:
    # Rollout steps slow enough that the deploy is still rolling out when replica A stops.
    sandbox.set_timing(SandboxTiming.fast().model_copy(update={"ecs_task_step": 0.5}))
    chat = RecordingChat()
    state = tmp_path / "state.db"
    async with replica(demo_config, sandbox, state, "replica-b", chat) as b:
        a_context = replica(demo_config, sandbox, state, "replica-a", chat)
        a = await a_context.__aenter__()
        try:
            result = await a.dispatcher.handle(ALICE, "deploy api staging v2")
            assert result.outcome is Outcome.STARTED and result.job is not None, result.text
            job_id = result.job.id
            await chat.wait_for(lambda _p: said(chat, "IN_PROGRESS"))
            # While A renews its lease, B leaves the job alone, and so does `unlock` on B.
            assert await b.jobs.take_over_expired() == []
            unlock = await b.dispatcher.handle(BOB, "unlock api staging")
            assert unlock.outcome is Outcome.REFUSED
            assert f"held by running job J{job_id}" in unlock.text
        finally:
            await a_context.__aexit__(None, None, None)  # replica A stops

        await chat.wait_for(lambda _p: said(chat, "deployed api v2 to staging"), timeout=30)
        assert await b.jobs.wait(job_id) is JobStatus.SUCCEEDED
        thread = chat.posted[0].origin.thread
        lines = texts(chat, thread)
        started = next(t for t in lines if t.startswith("ECS deployment "))
        deployment = started.split()[2]
        handed = next(i for i, t in enumerate(lines) if "replica replica-a is stopping" in t)
        taken = next(i for i, t in enumerate(lines) if t.startswith(f"job J{job_id} taken over"))
        watching = next(i for i, t in enumerate(lines) if "watching the rollout" in t)
        assert handed < taken < watching < len(lines) - 1, lines
        assert "by replica replica-b after its runner replica-a stopped" in lines[taken]
        assert f"ECS deployment {deployment} (api-staging:2) again" in lines[watching]
        assert lines[-1].startswith("deployed api v2 to staging in ")
        assert not any("cancelled" in t or "failed" in t for t in lines), lines

        # One revision registered, one deployment, done; the lock is free again.
        assert [arn.rsplit("/", 1)[-1] for arn in await revisions(b)] == [
            "api-staging:1",
            "api-staging:2",
        ]
        service = await ecs_service(b)
        assert service["taskDefinition"].endswith("api-staging:2")
        assert [d["id"] for d in service["deployments"]] == [deployment]
        assert await lock_holder(b) is None
        [record] = await b.services.store.list_deploys("api", "staging")
        assert (record.outcome, record.job_id, record.version) == ("succeeded", job_id, "v2")
        job = await b.services.store.get_job(job_id)
        assert job is not None and (job.status, job.runner) == (JobStatus.SUCCEEDED, "replica-b")


async def test_deploy_whose_replica_died_after_updating_the_service_is_watched_not_repeated(
    sandbox: Any, demo_config: Config, tmp_path: Path
) -> None:
    chat = RecordingChat()
    async with replica(
        demo_config, sandbox, tmp_path / "state.db", "replica-b", chat, takes_over=False
    ) as b:
        ecs, target = b.services.ecs, b.config.service("api", "staging").ecs
        assert target is not None
        before = await ecs.describe_service(REGION, target)
        # What the dead replica did: record, register, announce the update, update — and
        # die before it wrote down the deployment id.
        registered = await ecs.register_image_revision(
            REGION, before.task_definition, "app", image_with_tag(before.image, "v2"), "v2"
        )
        dead = await left_by_a_dead_replica(
            b,
            command="deploy api staging v2",
            title="deploy api v2 to staging",
            kind="deploy",
            state={},
        )
        record = await deploy_record(b, dead.id)
        record.task_definition = registered
        await b.services.store.put_deploy(record)
        dead.state = deploy_state(
            before.image, deploy_record=record.id, task_definition=registered, updating=True
        )
        await b.services.store.put_job(dead)
        deployment = await ecs.update_service(REGION, target, registered)

        assert await b.jobs.take_over_expired() == [dead.id]
        assert await b.jobs.wait(dead.id) is JobStatus.SUCCEEDED

        lines = texts(chat, f"dead-{dead.id}")
        assert lines[0].startswith(f"job J{dead.id} taken over by replica replica-b")
        assert "after its runner replica-dead stopped" in lines[0]
        assert f"watching the rollout of ECS deployment {deployment} (api-staging:2)" in lines[1]
        assert lines[-1].startswith("deployed api v2 to staging in ")
        assert len(await revisions(b)) == 2
        service = await ecs_service(b)
        assert [d["id"] for d in service["deployments"]] == [deployment]
        [done] = await b.services.store.list_deploys("api", "staging")
        assert done.outcome == "succeeded" and done.task_definition == registered
        assert await lock_holder(b) is None
        job = await b.services.store.get_job(dead.id)
        assert job is not None and job.state["deployment"] == deployment


async def test_deploy_whose_replica_died_before_changing_the_service_is_interrupted(
    sandbox: Any, demo_config: Config, tmp_path: Path
) -> None:
    chat = RecordingChat()
    async with replica(
        demo_config, sandbox, tmp_path / "state.db", "replica-b", chat, takes_over=False
    ) as b:
        target = b.config.service("api", "staging").ecs
        assert target is not None
        before = await b.services.ecs.describe_service(REGION, target)
        dead = await left_by_a_dead_replica(
            b,
            command="deploy api staging v2",
            title="deploy api v2 to staging",
            kind="deploy",
            state={},
        )
        record = await deploy_record(b, dead.id)
        dead.state = deploy_state(before.image, deploy_record=record.id)
        await b.services.store.put_job(dead)

        assert await b.jobs.take_over_expired() == [dead.id]
        assert await b.jobs.wait(dead.id) is JobStatus.INTERRUPTED

        final = texts(chat, f"dead-{dead.id}")[-1]
        assert final.startswith(f"deploy api v2 to staging: job J{dead.id} interrupted: ")
        assert "stopped before it changed the service (staging/api runs api-staging:1, v1)" in final
        assert "nothing was changed" in final and "run `deploy api staging v2` again" in final
        after = await b.services.ecs.describe_service(REGION, target)
        assert after.task_definition == before.task_definition
        assert len(await revisions(b)) == 1
        [interrupted] = await b.services.store.list_deploys("api", "staging")
        assert interrupted.outcome == "interrupted" and interrupted.ended_at is not None
        assert await lock_holder(b) is None


async def test_a_job_that_cannot_be_resumed_is_marked_interrupted_and_frees_its_lock(
    sandbox: Any, demo_config: Config, tmp_path: Path
) -> None:
    chat = RecordingChat()
    async with replica(
        demo_config, sandbox, tmp_path / "state.db", "replica-b", chat, takes_over=False
    ) as b:
        dead = await left_by_a_dead_replica(
            b,
            command="scale out web staging +1",
            title="scale out web in staging to 3",
            kind="",
            state={"launched": ["i-0abc123"]},
            lock="web",
        )
        assert await lock_holder(b, "web") is not None
        assert await b.jobs.take_over_expired() == [dead.id]
        assert await b.jobs.wait(dead.id) is JobStatus.INTERRUPTED

        first, final = texts(chat, f"dead-{dead.id}")
        assert "it cannot be resumed safely" in first
        assert final.startswith(f"scale out web in staging to 3: job J{dead.id} interrupted: ")
        assert "it had recorded launched: ['i-0abc123']" in final
        assert "then run `scale out web staging +1` again if needed" in final
        assert await lock_holder(b, "web") is None
        job = await b.services.store.get_job(dead.id)
        assert job is not None and job.status is JobStatus.INTERRUPTED
        [audit, *_] = await b.services.store.list_audit()
        assert (audit.job_id, audit.outcome) == (dead.id, "job interrupted")
        body, _content_type = b.metrics.render()
        found = samples(body.decode())
        assert value(found, "kajitori_jobs_total", outcome="interrupted") == 1
        # Taken over once: a second pass finds nothing more to do.
        assert await b.jobs.take_over_expired() == []


async def test_a_runner_that_lost_its_job_stops_without_touching_it(
    sandbox: Any, demo_config: Config, tmp_path: Path
) -> None:
    chat = RecordingChat()
    state = tmp_path / "state.db"
    steps: list[int] = []
    under_way = asyncio.Event()

    async def keeps_recording(job: JobContext) -> Message:
        while True:
            steps.append(len(steps))
            await job.save_state(step=len(steps))
            if len(steps) >= 3:
                under_way.set()
            await asyncio.sleep(0.05)

    # B's clock runs ten minutes ahead: it sees A's lease as run out while A still renews it,
    # as a replica would after A stalled (a long pause, a network partition) past its lease.
    ahead = ShiftedClock()
    ahead.advance(timedelta(minutes=10))
    async with (
        replica(demo_config, sandbox, state, "replica-a", chat, takes_over=False) as a,
        replica(demo_config, sandbox, state, "replica-b", chat, clock=ahead, takes_over=False) as b,
    ):
        record = await start_job(a, keeps_recording, title="keep recording")
        await asyncio.wait_for(under_way.wait(), 10)
        assert await b.jobs.take_over_expired() == [record.id]
        assert await b.jobs.wait(record.id) is JobStatus.INTERRUPTED
        # A learns at its next write or heartbeat that the job is no longer its own.
        assert await asyncio.wait_for(a.jobs.wait(record.id), 10) is JobStatus.RUNNING
        stopped_at = len(steps)
        await asyncio.sleep(0.3)
        assert len(steps) == stopped_at

        stored = await b.services.store.get_job(record.id)
        assert stored is not None
        assert (stored.status, stored.runner) == (JobStatus.INTERRUPTED, "replica-b")
        thread = chat.posted[0].origin.thread
        finals = [p for p in chat.posted if p.origin.thread == thread and is_final(p)]
        assert [p.text.split(":")[0] for p in finals] == ["keep recording"]
        assert "interrupted" in finals[0].text
        assert not said(chat, "was cancelled")


def is_final(posted: Posted) -> bool:
    return posted.message.tone.value in ("success", "failure")
