"""The end of a deploy record, the same for ECS services, fleets and Auto Scaling groups.

Each flow says how its own failures end the record (`note`); `ending` adds what is common
to all of them: an unexpected error is recorded as an internal failure, and the record is
closed, redacted and stored even while the job is being cancelled, unless the job was
handed over to another replica, whose runner ends it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bot.errors import KajitoriError
from bot.jobs.context import JobContext
from bot.model import DeployRecord

DETAIL_LIMIT = 500
# How far back a service's deploy records are read for a job's own or the last good one.
HISTORY_DEPTH = 200


async def recorded(job: JobContext, service: str, env: str) -> DeployRecord | None:
    """The deploy record a job taken over from a stopped replica had written, if any."""
    record_id = job.state.get("deploy_record")
    if record_id is None:
        return None
    records = await job.services.store.list_deploys(service, env, limit=HISTORY_DEPTH)
    return next((r for r in records if r.id == record_id), None)


def approval_detail(job: JobContext) -> str:
    """What a new deploy record says first: who approved it, when someone did."""
    approved = job.record.approved_by
    return f"approved by {approved}" if approved else ""


def note(record: DeployRecord, outcome: str | None, detail: str) -> None:
    """Record how the deploy ended (`outcome`, unless None) and add `detail` to what the
    record says."""
    if outcome is not None:
        record.outcome = outcome
    record.detail = f"{record.detail}; {detail}" if record.detail else detail


@contextlib.asynccontextmanager
async def ending(job: JobContext, record: DeployRecord) -> AsyncIterator[DeployRecord]:
    services = job.services
    try:
        yield record
    except Exception as error:
        if not isinstance(error, KajitoriError):
            note(record, "failed", "internal error")
        raise
    finally:
        if not job.handed_over:
            record.ended_at = services.clock.now()
            record.detail = services.redactor.text(record.detail)[:DETAIL_LIMIT]
            # The record must reach the store even while this job is being cancelled.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(services.store.put_deploy(record))
