"""The store port's contract for durable jobs (SQLite and DynamoDB alike): a job's record is
written only by the replica that runs it, so a runner that stalled past its lease cannot
overwrite what the replica that took the job over wrote."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.model import JobStatus
from bot.ports.store import Store
from tests.store.test_store_contract import RACERS, job, now


async def test_update_job_writes_while_its_runner_runs_it(store: Store) -> None:
    record = job(1, runner="replica-a")
    await store.put_job(record)
    record.state["deployment"] = "ecs-svc/1"
    assert await store.update_job(record)
    assert await store.get_job(1) == record


async def test_update_job_refuses_a_job_another_replica_took_over(store: Store) -> None:
    at = now()
    old = job(2, runner="replica-a", lease_expires=at - timedelta(seconds=1))
    await store.put_job(old)
    assert await store.claim_job(2, "replica-b", at + timedelta(minutes=2), at)
    taken = await store.get_job(2)
    assert taken is not None
    taken.state["deployment"] = "ecs-svc/2"
    assert await store.update_job(taken)

    # The stalled runner wakes up and tries to record its own ending: refused.
    old.status = JobStatus.FAILED
    old.summary = "cancelled"
    old.state["step"] = "stale"
    assert not await store.update_job(old)
    stored = await store.get_job(2)
    assert stored == taken
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert [j.id for j in await store.list_jobs(running_only=True)] == [2]


async def test_update_job_refuses_an_unknown_job(store: Store) -> None:
    assert not await store.update_job(job(404))
    assert await store.get_job(404) is None


async def test_update_job_that_ends_the_job_takes_it_off_the_running_list(store: Store) -> None:
    record = job(3)
    await store.put_job(record)
    record.status = JobStatus.SUCCEEDED
    record.ended_at = now()
    assert await store.update_job(record)
    assert await store.list_jobs(running_only=True) == []
    # Ended, the job can no longer be claimed by anyone.
    assert not await store.claim_job(3, "replica-b", now() + timedelta(minutes=2), now())


async def test_old_and_new_runner_racing_leave_the_new_runners_record(store: Store) -> None:
    at = now()
    await store.put_job(job(4, runner="replica-a", lease_expires=at - timedelta(seconds=1)))
    assert await store.claim_job(4, "replica-b", at + timedelta(minutes=2), at)
    stale = [job(4, runner="replica-a", summary=f"stale {n}") for n in range(RACERS)]
    fresh = job(4, runner="replica-b", summary="fresh")
    results = await asyncio.gather(*(store.update_job(r) for r in stale), store.update_job(fresh))
    assert results == [False] * RACERS + [True]
    stored = await store.get_job(4)
    assert stored is not None and stored.summary == "fresh" and stored.runner == "replica-b"
