"""Guardrails through the real dispatcher, job manager, locks and SQLite store, with a small
command of the test's own whose plan records what it did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from adapters.bootstrap import Bot, build_bot
from adapters.store.sqlite import SqliteStore
from bot.config import Config, Settings
from bot.errors import OperationFailed
from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.messages import Message
from bot.model import JobStatus, Origin, Outcome
from bot.plan import Plan
from bot.spec import Arg, CommandSpec, Context
from commands import build_registry
from tests.support.chat import RecordingChat
from tests.support.clock import ShiftedClock

done: list[str] = []


async def run_touch(job: JobContext) -> Message:
    service, env, mode = job.state["service"], job.state["env"], job.state["mode"]
    await job.progress("touching")
    if mode == "fail":
        raise OperationFailed("it broke")
    if mode == "slow":
        await asyncio.sleep(30)
    if mode == "bug":
        raise ZeroDivisionError("secret internals")
    done.append(f"{service}/{env}")
    return Message(text=f"touched {service} in {env}")


async def touch(ctx: Context) -> Plan:
    service, env = ctx.command.word("service"), ctx.command.word("env")
    ctx.services.config.service(service, env)
    mode = ctx.command.optional_word("mode") or "ok"
    return Plan(
        title=f"touch {service} in {env}",
        changes=[f"{service} gets touched"],
        run=run_touch,
        kind="touch",
        state={"service": service, "env": env, "mode": mode},
        locks=[LockKey(service, env)],
        destructive=mode == "destructive",
    )


TOUCH = CommandSpec(
    name="touch",
    usage="touch SERVICE ENV [MODE] [--dry-run] [--yes]",
    summary="test command",
    handler=touch,
    permission="deploy",
    args=(Arg("service"), Arg("env"), Arg("mode", optional=True)),
    flags=frozenset({"--dry-run", "--yes"}),
)


def origin(member: str) -> Origin:
    return Origin(adapter="local", channel="local", member=member)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def core(demo_config: Config, chat: RecordingChat, clock: ShiftedClock) -> AsyncIterator[Bot]:
    done.clear()
    registry = build_registry()
    registry.add(TOUCH)
    registry.runners["touch"] = run_touch
    store = await SqliteStore.open(":memory:")
    bot = await build_bot(
        demo_config,
        Settings(aws_endpoint_url="http://127.0.0.1:9"),
        store=store,
        chats=[chat],
        clock=clock,
        lock_lease=timedelta(seconds=2),
        registry=registry,
    )
    try:
        yield bot
    finally:
        await bot.close()


async def run(bot: Bot, member: str, text: str) -> tuple[Outcome, str, int | None]:
    result = await bot.dispatcher.handle(origin(member), text)
    if result.job is not None:
        await bot.jobs.wait(result.job.id)
    return result.outcome, result.text, result.job.id if result.job else None


async def test_a_job_runs_and_ends_with_a_final_message(core: Bot, chat: RecordingChat) -> None:
    outcome, text, job_id = await run(core, "local:carol", "touch api staging")
    assert outcome is Outcome.STARTED and text == f"touch api in staging: job J{job_id}"
    assert done == ["api/staging"]
    texts = chat.texts()
    assert any("touching" in t for t in texts)
    assert texts[-1] == "touched api in staging"
    job = await core.services.store.get_job(job_id or 0)
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert await core.services.store.get_lock("api/staging") is None


async def test_a_failure_and_a_bug_both_end_in_a_clear_message(
    core: Bot, chat: RecordingChat
) -> None:
    await run(core, "local:carol", "touch api staging fail")
    assert chat.texts()[-1] == "touch api in staging failed: it broke"
    _, _, job_id = await run(core, "local:carol", "touch api staging bug")
    last = chat.texts()[-1]
    assert last == f"touch api in staging: internal error, job J{job_id} (details are in the logs)"
    assert "secret internals" not in last and "Traceback" not in last
    assert await core.services.store.get_lock("api/staging") is None


async def test_cancelled_job_releases_its_lock(core: Bot, chat: RecordingChat) -> None:
    result = await core.dispatcher.handle(origin("local:carol"), "touch api staging slow")
    assert result.job is not None
    await chat.wait_for(lambda posted: any("touching" in p.text for p in posted))
    await core.jobs.cancel(result.job.id)
    assert await core.services.store.get_lock("api/staging") is None
    assert "was cancelled" in chat.texts()[-1]
    job = await core.services.store.get_job(result.job.id)
    assert job is not None and job.status is JobStatus.CANCELLED


async def test_second_operation_is_refused_naming_the_holder_and_job(core: Bot) -> None:
    first = await core.dispatcher.handle(origin("local:carol"), "touch api staging slow")
    assert first.job is not None
    outcome, text, _ = await run(core, "local:alice", "touch api staging")
    assert outcome is Outcome.REFUSED
    assert f"api/staging is locked by local:carol (job J{first.job.id})" in text
    await core.jobs.cancel(first.job.id)


async def test_permission_is_checked_per_environment(core: Bot) -> None:
    outcome, text, _ = await run(core, "local:carol", "touch api production")
    assert outcome is Outcome.REFUSED and "lacks permission deploy:production" in text
    outcome, text, _ = await run(core, "local:dave", "touch api staging")
    assert outcome is Outcome.REFUSED and "lacks permission deploy:staging" in text


async def test_channel_allowlist(core: Bot) -> None:
    result = await core.dispatcher.handle(
        Origin(adapter="slack", channel="slack:COTHER", member="local:alice"), "status api staging"
    )
    assert result.outcome is Outcome.REFUSED and "not accepted in slack:COTHER" in result.text


async def test_protected_environment_needs_a_second_approver(
    core: Bot, chat: RecordingChat
) -> None:
    outcome, text, _ = await run(core, "local:alice", "touch api production")
    assert outcome is Outcome.PENDING and "needs approval: request R1" in text
    assert done == []
    outcome, text, _ = await run(core, "local:alice", "approve 1")
    assert outcome is Outcome.REFUSED and "cannot approve your own request R1" in text
    outcome, text, _ = await run(core, "local:carol", "approve 1")
    assert outcome is Outcome.REFUSED and "approvers have role sre" in text
    outcome, text, job_id = await run(core, "local:bob", "approve 1")
    assert outcome is Outcome.STARTED and "approved by local:bob" in text
    assert done == ["api/production"]
    job = await core.services.store.get_job(job_id or 0)
    assert job is not None and job.member == "local:alice"
    outcome, text, _ = await run(core, "local:bob", "approve 1")
    assert outcome is Outcome.REFUSED and "already approved by local:bob" in text


async def test_expired_request_cannot_be_approved(core: Bot, clock: ShiftedClock) -> None:
    await run(core, "local:alice", "touch api production")
    clock.advance(timedelta(minutes=31))
    outcome, text, _ = await run(core, "local:bob", "approve 1")
    assert outcome is Outcome.REFUSED and "request R1 expired" in text
    assert done == []
    outcome, text, _ = await run(core, "local:bob", "approve 1")
    assert "already expired" in text


async def test_denied_request_never_runs(core: Bot) -> None:
    await run(core, "local:alice", "touch api production")
    outcome, text, _ = await run(core, "local:bob", "deny 1")
    assert outcome is Outcome.OK and "denied by local:bob" in text
    outcome, _, _ = await run(core, "local:bob", "approve 1")
    assert outcome is Outcome.REFUSED and done == []


async def test_destructive_needs_confirmation_unless_yes_from_an_approver(core: Bot) -> None:
    outcome, text, _ = await run(core, "local:carol", "touch api staging destructive --yes")
    assert outcome is Outcome.REFUSED and done == []
    assert "--yes skips the confirmation only for approvers (role sre)" in text
    assert "local:carol has developer" in text and "without --yes" in text
    outcome, text, _ = await run(core, "local:carol", "touch api staging destructive")
    assert outcome is Outcome.PENDING and "is destructive: confirm with `approve R1`" in text
    outcome, _, _ = await run(core, "local:carol", "approve 1")
    assert outcome is Outcome.STARTED and done == ["api/staging"]
    outcome, _, _ = await run(core, "local:alice", "touch api staging destructive --yes")
    assert outcome is Outcome.STARTED and len(done) == 2


async def test_dry_run_checks_and_changes_nothing(core: Bot) -> None:
    outcome, text, _ = await run(core, "local:alice", "touch api production --dry-run")
    assert outcome is Outcome.OK
    assert "dry run: touch api in production" in text
    assert "would need approval" in text and "nothing was changed" in text
    assert done == [] and await core.services.store.get_lock("api/production") is None


async def test_manual_lock_blocks_others_but_not_its_owner(core: Bot) -> None:
    outcome, _, _ = await run(core, "local:carol", "lock api staging testing cache")
    assert outcome is Outcome.OK
    outcome, text, _ = await run(core, "local:alice", "touch api staging")
    assert outcome is Outcome.REFUSED and "locked by local:carol: testing cache" in text
    outcome, _, _ = await run(core, "local:carol", "touch api staging")
    assert outcome is Outcome.STARTED and done == ["api/staging"]
    lock = await core.services.store.get_lock("api/staging")
    assert lock is not None and lock.owner == "local:carol", "the manual lock outlives the job"


async def test_lock_past_its_lease_can_be_taken_over(core: Bot, clock: ShiftedClock) -> None:
    await run(core, "local:carol", "lock api staging")
    outcome, _, _ = await run(core, "local:alice", "lock api staging mine now")
    assert outcome is Outcome.REFUSED
    clock.advance(timedelta(hours=4, seconds=1))
    outcome, text, _ = await run(core, "local:alice", "lock api staging mine now")
    assert outcome is Outcome.OK and "locked by local:alice" in text


async def test_only_owner_or_approver_unlocks(core: Bot) -> None:
    await run(core, "local:alice", "lock api staging")
    outcome, text, _ = await run(core, "local:carol", "unlock api staging")
    assert outcome is Outcome.REFUSED and "only local:alice or an approver" in text
    outcome, text, _ = await run(core, "local:bob", "unlock api staging")
    assert outcome is Outcome.OK and "held by local:alice" in text


async def test_every_command_is_audited_with_secrets_redacted(core: Bot) -> None:
    await run(core, "local:alice", "lock api staging password=hunter2secret")
    await run(core, "local:dave", "touch api staging")
    records = await core.services.store.list_audit()
    assert [r.outcome for r in records[:2]] == ["refused", "ok"]
    assert records[1].text == "lock api staging password=[redacted]"
    assert records[0].member == "local:dave" and records[0].channel == "local"


async def test_db_open_is_refused_where_no_private_reply_is_possible(core: Bot) -> None:
    typetalk = Origin(
        adapter="typetalk",
        channel="typetalk:topic/1",
        member="local:dave",
        thread="7",
        private_replies=False,
    )
    result = await core.dispatcher.handle(typetalk, "db open main staging")
    assert result.outcome is Outcome.REFUSED
    assert "cannot be handed out privately in typetalk:topic/1" in result.text
    assert await core.services.store.list_db_sessions() == []


async def test_a_manual_lock_stays_while_a_job_of_its_owner_runs_under_it(core: Bot) -> None:
    await run(core, "local:carol", "lock api staging testing cache")
    started = await core.dispatcher.handle(origin("local:carol"), "touch api staging slow")
    assert started.outcome is Outcome.STARTED and started.job is not None
    job_id = started.job.id
    # Unlocking now would let a second change start beside the running job.
    outcome, text, _ = await run(core, "local:carol", "unlock api staging")
    assert outcome is Outcome.REFUSED and f"covers running job J{job_id}" in text
    outcome, text, _ = await run(core, "local:alice", "touch api staging")
    assert outcome is Outcome.REFUSED and "locked by local:carol" in text
    await core.jobs.cancel(job_id)
    outcome, text, _ = await run(core, "local:carol", "unlock api staging")
    assert outcome is Outcome.OK, text
