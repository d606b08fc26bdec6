"""The property of stored plans, over generated cases: the executed change equals the
approved change, or nothing changes. Through the real dispatcher, SQLite store and sandbox:
a scale of api in production (protected, so every change waits for an approval), with or
without someone changing the service while the request waits."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Bot
from bot.model import JobStatus, Outcome
from tests.guardrails.conftest import REGION
from tests.guardrails.test_stored_plans import desired, say


async def set_desired(bot: Bot, count: int) -> None:
    ecs = await bot.aws.client("ecs", REGION)
    await ecs.update_service(cluster="production", service="api", desiredCount=count)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    target=st.integers(min_value=0, max_value=4),
    relative=st.booleans(),
    meanwhile=st.none() | st.integers(min_value=0, max_value=4),
)
async def test_the_executed_change_equals_the_approved_change_or_nothing_changes(
    bot: Bot, target: int, relative: bool, meanwhile: int | None
) -> None:
    before = await desired(bot, "production")
    assume(target != before)
    count = f"{target - before:+d}" if relative else str(target)
    request = await say(bot, "local:alice", f"scale out api production {count}")
    assert request.outcome is Outcome.PENDING and request.request is not None, request.text
    assert request.request.state["from"] == before and request.request.state["to"] == target
    if meanwhile is not None:
        await set_desired(bot, meanwhile)
    moved = meanwhile is not None and meanwhile != before

    approved = await say(bot, "local:bob", f"approve {request.request.id}")
    if moved:
        # Nothing changes: the service stays as the other change left it.
        assert approved.outcome is Outcome.REFUSED, approved.text
        assert approved.job is None
        assert await desired(bot, "production") == meanwhile
    else:
        # Exactly the approved change: from `before` to `target`, whatever the command said.
        assert approved.outcome is Outcome.STARTED, approved.text
        assert approved.job is not None
        assert approved.job.title.endswith(f"api in production from {before} to {target}")
        assert await bot.jobs.wait(approved.job.id) is JobStatus.SUCCEEDED
        assert await desired(bot, "production") == target
