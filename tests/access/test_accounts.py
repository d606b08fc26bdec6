"""One AWS account per environment: staging in the sandbox's default account, production
through a role in another account. The sandbox keeps accounts apart by credentials: what
AssumeRole hands out for a role in account 210987654321 reads and writes that account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import boto3
import pytest

from adapters.aws.clients import AwsClients
from adapters.bootstrap import Bot, aws_access, build_bot, doctor
from bot.config import Config, Settings, parse_config
from bot.model import JobStatus, Outcome
from tests.capacity.helpers import finish, say
from tests.conftest import demo_data
from tests.support.aws_proxy import AwsProxy
from tests.support.chat import RecordingChat
from tests.support.clock import ShiftedClock

REGION = "ap-northeast-1"
OTHER_ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/kajitori"


def two_account_config(role: str = ROLE) -> Config:
    return parse_config(two_account_data(role))


def two_account_data(role: str = ROLE) -> dict[str, Any]:
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    production = data["environments"]["production"]
    production["aws"] = {"role_arn": role, "external_id": "kajitori-test", "session_name": "ops"}
    # Only what the other account has: its own worker group.
    production["services"] = {"worker": {"asg": {"name": "worker-production"}}}
    production["databases"] = {}
    return data


def other_account(sandbox: Any, service: str) -> Any:
    """A boto3 client in the other account, through the same role (test setup only)."""
    sts = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=sandbox.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    credentials = sts.assume_role(RoleArn=ROLE, RoleSessionName="setup")["Credentials"]
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=sandbox.url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def seed_other_account(sandbox: Any) -> None:
    from sandbox.extensions import service_quotas

    service_quotas.set_applied_quota(OTHER_ACCOUNT, REGION, "ec2", "L-1216C47A", 64)
    ec2 = other_account(sandbox, "ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName="worker-production",
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.small"},
    )
    other_account(sandbox, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="worker-production",
        LaunchTemplate={"LaunchTemplateName": "worker-production", "Version": "$Latest"},
        MinSize=1,
        MaxSize=6,
        DesiredCapacity=3,
        AvailabilityZones=[f"{REGION}a"],
    )


def desired(sandbox: Any, account: str) -> int:
    if account == OTHER_ACCOUNT:
        autoscaling = other_account(sandbox, "autoscaling")
    else:
        autoscaling = boto3.client(
            "autoscaling",
            region_name=REGION,
            endpoint_url=sandbox.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["worker-production"])
    return int(group["AutoScalingGroups"][0]["DesiredCapacity"])


@pytest.fixture
async def proxy(sandbox: Any) -> AsyncIterator[AwsProxy]:
    async with AwsProxy(sandbox.url) as proxy:
        yield proxy


async def build(config: Config, proxy: AwsProxy, chat: RecordingChat, **kwargs: Any) -> Bot:
    return await build_bot(
        config, Settings(aws_endpoint_url=proxy.url), chats=[chat], runner="test", **kwargs
    )


def assumed(proxy: AwsProxy) -> int:
    return sum(1 for c in proxy.calls if c.action == "AssumeRole" and c.status == 200)


async def test_each_command_reaches_its_environments_account(
    sandbox: Any, proxy: AwsProxy, chat: RecordingChat
) -> None:
    seed_other_account(sandbox)
    bot = await build(two_account_config(), proxy, chat)
    try:
        production = await say(bot, "status worker production")
        assert production.outcome is Outcome.OK, production.text
        fields = production.messages[0].fields
        assert fields["desired"] == "3"
        assert fields["account"] == OTHER_ACCOUNT
        staging = await say(bot, "status worker staging")
        assert staging.messages[0].fields["desired"] == "1"
        assert staging.messages[0].fields["account"] == "123456789012"

        result = await say(bot, "scale out worker production +1 --yes")
        if result.outcome is Outcome.PENDING:
            assert result.request is not None
            result = await say(bot, f"approve {result.request.id}", "local:bob")
        assert result.outcome is Outcome.STARTED, result.text
        assert await finish(bot, result) is JobStatus.SUCCEEDED
        # The other account's group grew; the default account's group of that name did not.
        assert desired(sandbox, OTHER_ACCOUNT) == 4
        assert desired(sandbox, "123456789012") == 1

        limits = await say(bot, "limits")
        assert f"accounts 123456789012, {OTHER_ACCOUNT}" in limits.text
        rows = limits.messages[0].table.rows if limits.messages[0].table else []
        assert any(row[2] == f"{OTHER_ACCOUNT} {REGION}" for row in rows), rows
        # The role was assumed once (its credentials cached), with the configured extras.
        assert assumed(proxy) == 1
    finally:
        await bot.close()


async def test_status_of_an_ecs_service_names_the_account_in_its_arn_without_asking_sts(
    sandbox: Any, proxy: AwsProxy, chat: RecordingChat
) -> None:
    bot = await build(two_account_config(), proxy, chat)
    try:
        result = await say(bot, "status api staging")
        assert result.outcome is Outcome.OK, result.text
        assert result.messages[0].fields["account"] == "123456789012"
        assert "GetCallerIdentity" not in {c.action for c in proxy.calls}
        assert "DescribeServices" in {c.action for c in proxy.calls}
    finally:
        await bot.close()


async def test_a_role_that_cannot_be_assumed_is_named_and_spares_the_other_environments(
    sandbox: Any, chat: RecordingChat
) -> None:
    seed_other_account(sandbox)
    async with AwsProxy(sandbox.url, refuse=[f"RoleArn={ROLE}"]) as proxy:
        bot = await build(two_account_config(), proxy, chat)
        try:
            refused = await say(bot, "status worker production")
            assert refused.outcome is Outcome.REFUSED, refused.text
            assert "environment production" in refused.text
            assert ROLE in refused.text
            assert "AccessDenied" in refused.text
            assert "Traceback" not in refused.text
            staging = await say(bot, "status worker staging")
            assert staging.outcome is Outcome.OK, staging.text
            limits = await say(bot, "limits")
            assert limits.outcome is Outcome.OK, limits.text
            assert any("production" in n and ROLE in n for n in [limits.text, str(limits.messages)])
        finally:
            await bot.close()

        checks = {
            c.env: c
            for c in await doctor(two_account_config(), Settings(aws_endpoint_url=proxy.url))
        }
        assert checks["staging"].ok
        assert not checks["production"].ok
        assert not checks["production"].identity_ok
        assert ROLE in "; ".join(checks["production"].problems)


async def test_doctor_reports_each_account_and_what_it_can_see(
    sandbox: Any, proxy: AwsProxy
) -> None:
    seed_other_account(sandbox)
    data = two_account_data()
    data["environments"]["production"]["services"]["missing"] = {"asg": {"name": "nowhere"}}
    checks = {
        c.env: c for c in await doctor(parse_config(data), Settings(aws_endpoint_url=proxy.url))
    }
    production = checks["production"]
    assert production.identity_ok and production.account == OTHER_ACCOUNT
    assert production.account_ok
    assert production.seen == {"missing": False, "worker": True}
    assert any("nowhere" in p for p in production.problems)
    assert checks["staging"].account == "123456789012" and checks["staging"].ok


async def test_credentials_are_renewed_before_they_expire_during_a_long_job(
    sandbox: Any, proxy: AwsProxy, chat: RecordingChat
) -> None:
    seed_other_account(sandbox)
    config = two_account_config()
    clock = ShiftedClock()
    clients = AwsClients(
        endpoint_url=proxy.url,
        **{**aws_access(config), "refresh_margin": timedelta(minutes=15)},
        now=clock.now,
    )
    bot = await build(config, proxy, chat, aws=clients)
    try:
        first = await say(bot, "status worker production")
        assert first.outcome is Outcome.OK, first.text
        assert assumed(proxy) == 1
        result = await say(bot, "scale out worker production +2 --yes")
        if result.outcome is Outcome.PENDING:
            assert result.request is not None
            result = await say(bot, f"approve {result.request.id}", "local:bob")
        assert result.outcome is Outcome.STARTED, result.text
        # 50 minutes on: the hour-long credentials are inside the 15-minute margin, and the
        # job's next call renews them (as long as the clock stays shifted, the renewed ones
        # look near their end too, so each call renews).
        clock.advance(timedelta(minutes=50))
        assert await finish(bot, result) is JobStatus.SUCCEEDED
        renewals = assumed(proxy)
        assert renewals >= 2
        assert clients.assumed[ROLE] == renewals
        assert desired(sandbox, OTHER_ACCOUNT) == 5
        # Back to the real time: the renewed credentials have most of their hour left, and
        # the next command uses them without renewing.
        clock.advance(timedelta(minutes=-50))
        again = await say(bot, "status worker production")
        assert again.outcome is Outcome.OK, again.text
        assert assumed(proxy) == renewals
    finally:
        await bot.close()
