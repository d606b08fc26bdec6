"""`cancel JOB` on a replica other than the one running the job: the request goes through the
store, the running replica stops the job within a few seconds, and a deploy that already
changed the ECS service rolls back there after the confirmation given here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.model import JobStatus, Outcome
from tests.deploy.helpers import SLOW, finish, running_definition, say
from tests.guardrails.conftest import BotFactory
from tests.support.chat import RecordingChat

# Short leases: the running replica looks for stop requests every half second (seconds as a
# number).
QUICK_JOBS = {"lease": "2s", "takeover_interval": 0.5}


def _manual_canary(data: dict[str, Any]) -> None:
    data["jobs"] = QUICK_JOBS
    web = data["environments"]["staging"]["services"]["web"]
    web["deploy"]["canary"] = {"instances": 1, "bake": "manual"}


async def test_a_job_running_on_one_replica_is_cancelled_from_the_other(
    make_bot: BotFactory, store_url: str
) -> None:
    chat = RecordingChat()
    runner = await make_bot(store_url, chat=chat, change=_manual_canary, runner="replica-a")
    other = await make_bot(store_url, change=_manual_canary, runner="replica-b")
    started = await say(runner, "local:alice", "deploy web staging v2")
    assert started.outcome is Outcome.STARTED and started.job is not None, started.text
    job = started.job
    # Waiting at its canary for a person: it would wait for ever.
    await chat.wait_for(lambda posted: any("promote" in p.text for p in posted))

    refused = await say(other, "local:carol", f"cancel {job.ref}")
    assert refused.outcome is Outcome.REFUSED, refused.text
    assert (await other.services.store.get_job(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]

    answer = await say(other, "local:alice", f"cancel {job.ref}")
    assert answer.outcome is Outcome.OK, answer.text
    assert await runner.jobs.wait(job.id) is JobStatus.CANCELLED
    ended = await other.services.store.get_job(job.id)
    assert ended is not None and ended.cancelled_by == "local:alice"
    assert "was cancelled by local:alice" in ended.result, ended.result
    # The answer is the job's end when it came in time, else that it was asked.
    assert ended.result in answer.text or "was asked to stop" in answer.text, answer.text

    again = await say(other, "local:alice", f"cancel {job.ref}")
    assert again.outcome is Outcome.REFUSED
    assert "already ended cancelled" in again.text, again.text


async def test_a_rolling_deploy_on_one_replica_rolls_back_when_cancelled_on_the_other(
    make_bot: BotFactory, sandbox: Any, tmp_path: Path
) -> None:
    sandbox.set_timing(SLOW)
    store = f"sqlite:///{tmp_path / 'state.db'}"

    def quick(data: dict[str, Any]) -> None:
        data["jobs"] = QUICK_JOBS

    chat = RecordingChat()
    runner = await make_bot(store, chat=chat, change=quick, runner="replica-a")
    other = await make_bot(store, change=quick, runner="replica-b")
    before = await running_definition(runner)
    started = await say(runner, "local:alice", "deploy api staging v2")
    assert started.job is not None, started.text
    job = started.job
    await chat.wait_for(lambda posted: any("ECS deployment" in p.text for p in posted))

    asked = await say(other, "local:alice", f"cancel {job.ref}")
    assert asked.outcome is Outcome.PENDING and asked.request is not None, asked.text
    confirmed = await say(other, "local:alice", f"approve {asked.request.ref}")
    assert confirmed.outcome is Outcome.STARTED, confirmed.text
    assert await runner.jobs.wait(job.id) is JobStatus.CANCELLED
    assert await finish(other, confirmed) is JobStatus.SUCCEEDED
    ended = await runner.services.store.get_job(job.id)
    assert ended is not None and ended.cancelled_by == "local:alice"
    assert "rolled back to api-staging:1 (v1)" in ended.result, ended.result
    after = await running_definition(runner)
    assert after["taskDefinitionArn"] == before["taskDefinitionArn"]
