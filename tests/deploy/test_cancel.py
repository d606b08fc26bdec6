"""`cancel JOB` through the real dispatcher against the sandbox, and Ctrl-C on `kajitori run`:
a job stops and says where things stand; a deploy that already changed the ECS service asks
whether to roll back or let ECS finish; no record says "cancelled" for what went on."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from adapters.bootstrap import Bot
from bot.model import JobRecord, JobStatus, Outcome
from sandbox import SandboxTiming
from tests.conftest import demo_data
from tests.deploy.helpers import (
    SLOW,
    finish,
    history,
    image_of,
    is_image,
    lock_holder,
    running_definition,
    say,
)
from tests.support.chat import RecordingChat

ROOT = Path(__file__).parent.parent.parent


async def _job(bot: Bot, job_id: int) -> JobRecord:
    record = await bot.services.store.get_job(job_id)
    assert record is not None
    return record


async def test_cancel_of_a_rolling_deploy_asks_and_rolls_back_when_confirmed(
    bot: Bot, chat: RecordingChat, sandbox: Any
) -> None:
    sandbox.set_timing(SLOW)
    before = await running_definition(bot)
    started = await say(bot, "local:alice", "deploy api staging v2")
    assert started.job is not None
    job = started.job
    await chat.wait_for(lambda posted: any("ECS deployment" in p.text for p in posted))

    asked = await say(bot, "local:alice", f"cancel {job.ref}")
    assert asked.outcome is Outcome.PENDING, asked.text
    assert asked.request is not None
    assert f"roll back api in staging to api-staging:1 (v1), stopping job {job.ref}" in asked.text
    assert f"`deny {asked.request.ref}`: nothing is rolled back: ECS finishes" in asked.text
    assert [b.label for b in asked.messages[0].buttons] == ["Confirm", "Deny"]
    # Asking changed nothing: the job still runs and holds the lock.
    assert (await _job(bot, job.id)).status is JobStatus.RUNNING

    confirmed = await say(bot, "local:alice", f"approve {asked.request.ref}")
    assert confirmed.outcome is Outcome.STARTED, confirmed.text
    assert await bot.jobs.wait(job.id) is JobStatus.CANCELLED
    await finish(bot, confirmed)

    ended = await _job(bot, job.id)
    assert ended.cancelled_by == "local:alice"
    assert "cancelled by local:alice: rolled back to api-staging:1 (v1)" in ended.result
    assert "api-staging:2 (v2) is not running" in ended.result
    after = await running_definition(bot)
    assert after["taskDefinitionArn"] == before["taskDefinitionArn"]
    assert image_of(after).endswith("/api:v1")
    [record] = await history(bot)
    assert record.outcome == "cancelled"
    assert "rolled back to api-staging:1 (v1)" in record.detail
    assert await lock_holder(bot) is None


async def test_denying_the_cancel_of_a_deploy_lets_ecs_finish_and_records_success(
    bot: Bot, chat: RecordingChat, sandbox: Any
) -> None:
    sandbox.set_timing(SLOW)
    started = await say(bot, "local:alice", "deploy api staging v2")
    assert started.job is not None
    await chat.wait_for(lambda posted: any("ECS deployment" in p.text for p in posted))
    asked = await say(bot, "local:alice", f"cancel {started.job.id}")
    assert asked.request is not None, asked.text

    denied = await say(bot, "local:alice", f"deny {asked.request.ref}")
    assert denied.outcome is Outcome.OK
    assert "ECS finishes the rollout of api-staging:2 (v2)" in denied.text

    assert await finish(bot, started) is JobStatus.SUCCEEDED
    assert await is_image(bot, await running_definition(bot), "v2")
    [record] = await history(bot)
    assert record.outcome == "succeeded"


async def test_cancel_is_for_the_owner_or_an_approver_and_names_unknown_jobs(
    bot: Bot, chat: RecordingChat, sandbox: Any
) -> None:
    sandbox.set_timing(SLOW)
    started = await say(bot, "local:alice", "scale out api staging +1")
    assert started.job is not None

    refused = await say(bot, "local:carol", f"cancel {started.job.ref}")
    assert refused.outcome is Outcome.REFUSED
    assert f"only local:alice (who started job {started.job.ref}) or an approver" in refused.text

    wrong = await say(bot, "local:alice", f"cancel R{started.job.id}")
    assert wrong.outcome is Outcome.USAGE
    assert "is a request id; this command takes a job id" in wrong.text
    missing = await say(bot, "local:alice", "cancel J999")
    assert missing.outcome is Outcome.REFUSED and "there is no job J999" in missing.text

    await chat.wait_for(lambda posted: any("waiting for tasks" in p.text for p in posted))
    stopped = await say(bot, "local:bob", f"cancel {started.job.ref}")
    assert stopped.outcome is Outcome.OK, stopped.text
    assert f"job {started.job.ref} was cancelled by local:bob" in stopped.text
    assert "last progress: " in stopped.text
    ended = await _job(bot, started.job.id)
    assert ended.status is JobStatus.CANCELLED and ended.cancelled_by == "local:bob"

    again = await say(bot, "local:bob", f"cancel {started.job.ref}")
    assert again.outcome is Outcome.REFUSED and "already ended cancelled" in again.text


def _config(tmp_path: Path, endpoint: str) -> Path:
    data = demo_data()
    data["store"] = f"sqlite:///{tmp_path}/state.db"
    path = tmp_path / "kajitori.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ctrl_c_on_run_stops_waiting_without_recording_a_cancel(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.set_timing(SandboxTiming(ecs_task_step=1.5))
    config = _config(tmp_path, sandbox.url)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": sandbox.url,
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapters.cli",
            "run",
            "--config",
            str(config),
            "--as",
            "local:alice",
            "deploy api staging v2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if "ECS deployment" in line and "started" in line:
            break
    else:
        process.kill()
        raise AssertionError("".join(seen))
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    output = "".join(seen) + rest
    assert process.returncode == 130, output
    assert "interrupted: kajitori stopped before the job ended" in output
    assert "was cancelled" not in output

    db = sqlite3.connect(tmp_path / "state.db")
    [(job_doc,)] = db.execute("SELECT doc FROM jobs").fetchall()
    [(deploy_doc,)] = db.execute("SELECT doc FROM deploys").fetchall()
    job = JobRecord.model_validate_json(job_doc)
    assert job.status is JobStatus.INTERRUPTED
    assert '"outcome":"unwatched"' in deploy_doc.replace(" ", "")
    assert "kajitori stopped while ECS rolled it out; ECS carries on" in deploy_doc
