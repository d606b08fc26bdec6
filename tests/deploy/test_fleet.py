"""EC2 fleet deploys through SSM Run Command, against the sandbox over HTTP: batches, the
canary and its `promote` / `abort`, failures that leave the fleet serving, rollback,
restart, and refusals that change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from adapters.bootstrap import Bot, build_bot
from bot.config import Config, Settings, parse_config
from bot.model import JobStatus, Outcome
from bot.polling import Polling
from tests.conftest import demo_data
from tests.deploy.helpers import REGION, finish, say
from tests.support.chat import RecordingChat

QUICK = Polling(first=0.02, factor=1.5, longest=0.1, report_every=0.5)


def fleet_config(**deploy: Any) -> Config:
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    web = data["environments"]["staging"]["services"]["web"]
    web["deploy"] = {"ssm_document": "web-deploy", "batch": 1, **deploy}
    return parse_config(data)


@pytest.fixture
def make_bot(sandbox: Any, chat: RecordingChat) -> Callable[[Config], Any]:
    async def make(config: Config) -> Bot:
        return await build_bot(
            config,
            Settings(aws_endpoint_url=sandbox.url),
            chats=[chat],
            runner="test",
            polling=QUICK,
        )

    return make


async def web_instances(bot: Bot, env: str = "staging") -> dict[str, str]:
    """Each running web instance of `env` with the version its tag says."""
    found = await bot.services.ec2.fleet_instances(REGION, "web", env)
    return {i.id: i.version or "" for i in found if i.state == "running"}


async def target_states(bot: Bot, env: str = "staging") -> dict[str, str]:
    arn = await bot.services.target_groups.arn(REGION, f"web-{env}-tg")
    return {h.target_id: h.state for h in await bot.services.target_groups.health(REGION, arn)}


async def commands_sent(bot: Bot) -> list[dict[str, Any]]:
    ssm = await bot.aws.client("ssm", REGION)
    listed: list[dict[str, Any]] = (await ssm.list_commands())["Commands"]
    return listed


async def waiting_for_decision(chat: RecordingChat) -> None:
    await chat.wait_for(lambda posted: any("waits for a person" in p.text for p in posted))


async def test_fleet_deploy_runs_a_canary_waits_for_promote_then_deploys_the_second_batch(
    make_bot: Any, chat: RecordingChat
) -> None:
    bot = await make_bot(fleet_config(canary={"instances": 1, "bake": "manual"}))
    try:
        before = await web_instances(bot)
        assert sorted(before.values()) == ["v1", "v1"]
        canary, second = sorted(before)

        result = await say(bot, "local:carol", "deploy web staging v2")
        assert result.outcome is Outcome.STARTED, result.text
        assert result.job is not None
        job_id = result.job.id
        await waiting_for_decision(chat)

        # The canary runs v2 and serves again; the second instance was never touched.
        assert await web_instances(bot) == {canary: "v2", second: "v1"}
        assert await target_states(bot) == {canary: "healthy", second: "healthy"}
        assert len(await commands_sent(bot)) == 1
        waiting = next(p.message for p in chat.posted if "waits for a person" in p.text)
        assert [(b.action, b.request_id) for b in waiting.buttons] == [
            ("promote", f"J{job_id}"),
            ("abort", f"J{job_id}"),
        ]

        # dave is neither the requester nor an approver.
        refused = await say(bot, "local:dave", f"promote {job_id}")
        assert refused.outcome is Outcome.REFUSED
        assert "only local:carol" in refused.text
        promoted = await say(bot, "local:carol", f"promote {job_id}")
        assert promoted.outcome is Outcome.OK, promoted.text
        assert await finish(bot, result) is JobStatus.SUCCEEDED

        assert await web_instances(bot) == {canary: "v2", second: "v2"}
        assert await target_states(bot) == {canary: "healthy", second: "healthy"}
        commands = await commands_sent(bot)
        assert [c["InstanceIds"] for c in commands] == [[canary], [second]]
        assert all(c["DocumentName"] == "web-deploy" for c in commands)
        assert all(c["Parameters"] == {"version": ["v2"]} for c in commands)
        texts = chat.texts()
        assert any("promoted by local:carol" in t for t in texts), texts
        assert texts[-1].startswith("deployed web v2 to staging in ")
        assert "2 instances in 2 batches (was v1)" in texts[-1]

        [record] = await bot.services.store.list_deploys("web", "staging")
        assert (record.kind, record.version, record.outcome) == ("deploy", "v2", "succeeded")
        assert record.previous_instances == {canary: "v1", second: "v1"}
        assert record.instances == {canary: "v2", second: "v2"}
        history = await say(bot, "local:carol", "history web staging")
        assert f"{canary}: v2, {second}: v2" in history.text, history.text
        status = await say(bot, "local:carol", "status web staging")
        assert "versions: 2 v2" in status.text, status.text
    finally:
        await bot.close()


async def test_broken_version_stops_after_the_canary_with_the_rest_untouched_and_serving(
    make_bot: Any, chat: RecordingChat
) -> None:
    bot = await make_bot(fleet_config(canary={"instances": 1, "bake": "manual"}))
    try:
        canary, second = sorted(await web_instances(bot))
        result = await say(bot, "local:alice", "deploy web staging broken")
        assert await finish(bot, result) is JobStatus.FAILED

        final = chat.texts()[-1]
        assert "canary failed" in final, final
        assert f"{canary}: Failed (exit 1)" in final
        assert "health check http://127.0.0.1:8080/healthz: 500" in final  # the stdout tail
        assert f"• {canary}: broken (failed)" in final
        assert f"• {second}: v1" in final
        assert "web-staging-tg serves from 1 healthy instance" in final
        assert "rollback web staging" in final
        # The second instance never ran the command and serves; the canary stays out.
        assert await web_instances(bot) == {canary: "v1", second: "v1"}
        assert await target_states(bot) == {second: "healthy"}
        assert [c["InstanceIds"] for c in await commands_sent(bot)] == [[canary]]
        [record] = await bot.services.store.list_deploys("web", "staging")
        assert record.outcome == "failed"

        # Rolling back runs v1 again on the canary only, and puts it back in service.
        rollback = await say(bot, "local:alice", "rollback web staging")
        assert rollback.outcome is Outcome.PENDING, rollback.text  # confirmation
        assert rollback.request is not None
        confirmed = await say(bot, "local:alice", f"approve {rollback.request.id}")
        assert await finish(bot, confirmed) is JobStatus.SUCCEEDED, chat.texts()[-1]
        assert await target_states(bot) == {canary: "healthy", second: "healthy"}
        assert await web_instances(bot) == {canary: "v1", second: "v1"}
        assert [c["InstanceIds"] for c in await commands_sent(bot)] == [[canary], [canary]]
        assert "rolled back web in staging to v1" in chat.texts()[-1]
    finally:
        await bot.close()


async def test_abort_after_the_canary_leaves_the_other_batches_untouched(
    make_bot: Any, chat: RecordingChat
) -> None:
    bot = await make_bot(fleet_config(canary={"instances": 1, "bake": "manual"}))
    try:
        canary, second = sorted(await web_instances(bot))
        result = await say(bot, "local:carol", "deploy web staging v3")
        assert result.job is not None
        await waiting_for_decision(chat)
        aborted = await say(bot, "local:bob", f"abort {result.job.id}")  # an approver
        assert aborted.outcome is Outcome.OK, aborted.text
        assert await finish(bot, result) is JobStatus.FAILED
        assert "aborted by local:bob after the canary" in chat.texts()[-1]
        assert await web_instances(bot) == {canary: "v3", second: "v1"}
        [record] = await bot.services.store.list_deploys("web", "staging")
        assert record.outcome == "aborted"
        late = await say(bot, "local:carol", f"promote {result.job.id}")
        assert late.outcome is Outcome.REFUSED
    finally:
        await bot.close()


async def test_canary_bake_time_promotes_by_itself(make_bot: Any, chat: RecordingChat) -> None:
    bot = await make_bot(fleet_config(canary={"instances": 1, "bake": "1s"}))
    try:
        result = await say(bot, "local:alice", "deploy web staging v2")
        assert await finish(bot, result) is JobStatus.SUCCEEDED, chat.texts()[-1]
        assert any("promoted by bake time" in t for t in chat.texts())
        assert sorted((await web_instances(bot)).values()) == ["v2", "v2"]
    finally:
        await bot.close()


async def test_fleet_deploy_dry_run_shows_batches_and_versions_and_changes_nothing(
    make_bot: Any,
) -> None:
    bot = await make_bot(fleet_config(canary={"instances": 1, "bake": "manual"}))
    try:
        canary, second = sorted(await web_instances(bot))
        result = await say(bot, "local:alice", "deploy web staging v2 --dry-run")
        assert result.outcome is Outcome.OK, result.text
        assert f"canary: {canary} v1 → v2" in result.text
        assert f"batch 2/2: {second} v1 → v2" in result.text
        assert "deregistration delay 1s" in result.text
        assert "each with its SSM agent online" in result.text
        assert await commands_sent(bot) == []
    finally:
        await bot.close()


async def test_fleet_without_a_deploy_command_is_refused(make_bot: Any) -> None:
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    del data["environments"]["staging"]["services"]["web"]["deploy"]
    bot = await make_bot(parse_config(data))
    try:
        result = await say(bot, "local:alice", "deploy web staging v2")
        assert result.outcome is Outcome.REFUSED
        assert "without a deploy command" in result.text
        assert "deploy: {ssm_document: AWS-RunShellScript" in result.text
        assert await commands_sent(bot) == []
    finally:
        await bot.close()


async def test_fleet_deploy_refuses_an_instance_without_the_ssm_agent(
    make_bot: Any, sandbox: Any
) -> None:
    bot = await make_bot(fleet_config())
    try:
        ec2 = await bot.aws.client("ec2", REGION)
        launched = await ec2.run_instances(
            LaunchTemplate={"LaunchTemplateName": "web-staging"},
            MinCount=1,
            MaxCount=1,
        )
        stray = launched["Instances"][0]["InstanceId"]
        await asyncio.sleep(0.2)  # pending -> running
        result = await say(bot, "local:alice", "deploy web staging v2")
        assert result.outcome is Outcome.REFUSED, result.text
        assert f"no SSM agent registered on {stray}" in result.text
        assert "InvalidInstanceId" in result.text
        assert "nothing was changed" in result.text
        assert await commands_sent(bot) == []
        assert set((await web_instances(bot)).values()) == {"v1"}
    finally:
        await bot.close()


async def test_fleet_deploy_with_run_shell_script_renders_the_command(
    make_bot: Any, chat: RecordingChat
) -> None:
    bot = await make_bot(
        fleet_config(ssm_document="AWS-RunShellScript", command="/opt/app/deploy.sh {version}")
    )
    try:
        result = await say(bot, "local:alice", "deploy web staging v3")
        assert await finish(bot, result) is JobStatus.SUCCEEDED, chat.texts()[-1]
        commands = await commands_sent(bot)
        assert {tuple(c["Parameters"]["commands"]) for c in commands} == {
            ("/opt/app/deploy.sh v3",)
        }
        assert len(commands) == 2  # batch 1, no canary
        assert set((await web_instances(bot)).values()) == {"v3"}
    finally:
        await bot.close()


async def test_fleet_restart_asks_for_confirmation_and_reruns_each_instances_version(
    make_bot: Any, chat: RecordingChat
) -> None:
    bot = await make_bot(fleet_config(canary={"instances": 1, "bake": "manual"}))
    try:
        result = await say(bot, "local:carol", "restart web staging")
        assert result.outcome is Outcome.PENDING, result.text
        assert result.request is not None
        assert "is destructive: confirm" in result.text
        assert await commands_sent(bot) == []
        confirmed = await say(bot, "local:carol", f"approve {result.request.id}")
        assert await finish(bot, confirmed) is JobStatus.SUCCEEDED, chat.texts()[-1]
        commands = await commands_sent(bot)
        assert len(commands) == 2  # no canary for a restart
        assert all(c["Parameters"] == {"version": ["v1"]} for c in commands)
        assert chat.texts()[-1].startswith("restarted web in staging in ")
        assert set((await target_states(bot)).values()) == {"healthy"}
    finally:
        await bot.close()
