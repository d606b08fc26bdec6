"""A fleet deploy taken over by a second replica: it re-reads the SSM command it recorded
instead of sending it again, waits at the canary there, and a `promote` typed on that
replica reaches it. Two whole bots share a SQLite file and talk to the sandbox over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import parse_config
from bot.model import JobStatus, Origin, Outcome
from sandbox import SandboxTiming
from tests.conftest import demo_data
from tests.reliability.helpers import ALICE
from tests.reliability.test_durable_jobs import replica, said
from tests.support.chat import RecordingChat

REGION = "ap-northeast-1"
CAROL = Origin(adapter="local", channel="local", member="local:carol")


async def test_fleet_deploy_is_taken_over_mid_command_and_promoted_on_the_other_replica(
    sandbox: Any, tmp_path: Path
) -> None:
    # The canary's command runs long enough for replica A to stop while it runs.
    sandbox.set_timing(SandboxTiming.fast().model_copy(update={"ssm_command": 1.5}))
    data = demo_data()
    data["environments"]["staging"]["services"]["web"]["deploy"] = {
        "ssm_document": "web-deploy",
        "batch": 1,
        "canary": {"instances": 1, "bake": "manual"},
    }
    config = parse_config(data)
    chat = RecordingChat()
    state = tmp_path / "state.db"
    async with replica(config, sandbox, state, "replica-b", chat) as b:
        a_context = replica(config, sandbox, state, "replica-a", chat)
        a = await a_context.__aenter__()
        try:
            result = await a.dispatcher.handle(ALICE, "deploy web staging v2")
            assert result.outcome is Outcome.STARTED and result.job is not None, result.text
            job_id = result.job.id
            await chat.wait_for(lambda _p: said(chat, "SSM web-deploy running on"))
        finally:
            await a_context.__aexit__(None, None, None)  # replica A stops mid-command

        await chat.wait_for(lambda _p: said(chat, "waits for a person"), timeout=30)
        ssm = await b.aws.client("ssm", REGION)
        assert len((await ssm.list_commands())["Commands"]) == 1  # not sent again
        promoted = await b.dispatcher.handle(CAROL, f"promote {job_id}")
        assert promoted.outcome is Outcome.REFUSED  # carol did not start it, nor approves
        promoted = await b.dispatcher.handle(ALICE, f"promote {job_id}")
        assert promoted.outcome is Outcome.OK, promoted.text
        assert await b.jobs.wait(job_id) is JobStatus.SUCCEEDED, chat.texts()[-1]

        lines = chat.texts(chat.posted[0].origin.thread)
        taken = next(i for i, t in enumerate(lines) if t.startswith(f"job J{job_id} taken over"))
        going_on = next(i for i, t in enumerate(lines) if t.startswith("going on from canary"))
        assert taken < going_on, lines
        assert lines[-1].startswith("deployed web v2 to staging in "), lines
        commands = (await ssm.list_commands())["Commands"]
        assert [len(c["InstanceIds"]) for c in commands] == [1, 1]
        instances = await b.services.ec2.fleet_instances(REGION, "web", "staging")
        assert {i.version for i in instances} == {"v2"}
        [record] = await b.services.store.list_deploys("web", "staging")
        assert (record.outcome, record.job_id) == ("succeeded", job_id)
        job = await b.services.store.get_job(job_id)
        assert job is not None and job.runner == "replica-b"
