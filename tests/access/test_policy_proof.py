"""The policy `kajitori iam-policy` generates for the demo config allows every AWS call the
bot makes running the demo's commands, and denies the same calls on resources the config
does not name. Calls are recorded from the bot's own clients (tests/support/aws_calls.py)
and judged by moto's IAM policy evaluator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3

from adapters.aws.secrets import AdminSecrets
from adapters.bootstrap import Bot, generate_policies
from bot.config import Config, Settings
from bot.model import JobStatus, Outcome
from bot.redaction import Redactor
from tests.capacity.helpers import finish, say
from tests.support import aws_calls
from tests.support.aws_calls import Check, allows, checks

ROOT = Path(__file__).parent.parent.parent
ACCOUNT = "123456789012"
REGION = "ap-northeast-1"


async def demo_policy(config: Config, sandbox: Any) -> dict[str, Any]:
    generated = await generate_policies(
        config, Settings(aws_endpoint_url=sandbox.url), list(config.environments)
    )
    assert list(generated.policies) == [ACCOUNT]
    return generated.policies[ACCOUNT]


def instance_tags(sandbox: Any) -> dict[str, dict[str, str]]:
    ec2 = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=sandbox.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    tags: dict[str, dict[str, str]] = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            tags[instance["InstanceId"]] = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    return tags


async def run(bot: Bot, text: str) -> None:
    result = await say(bot, f"{text} --yes" if text.startswith(("scale", "rollback")) else text)
    if result.outcome is Outcome.PENDING:
        assert result.request is not None
        result = await say(bot, f"approve {result.request.id}", "local:bob")
    assert result.outcome in (Outcome.OK, Outcome.STARTED), f"{text}: {result.text}"
    if result.outcome is Outcome.STARTED:
        assert await finish(bot, result) is JobStatus.SUCCEEDED, text


def normalized(policy: dict[str, Any]) -> str:
    """The policy with the ids AWS picks (launch templates) left out, lists sorted."""
    text = re.sub(r"lt-[0-9a-f]{17}", "lt-ID", json.dumps(policy, sort_keys=True))
    statements = json.loads(text)["Statement"]
    for statement in statements:
        for key in ("Resource",):
            if isinstance(statement[key], list):
                statement[key] = sorted(statement[key])
        for operator in statement.get("Condition", {}).values():
            for key, value in operator.items():
                if isinstance(value, list):
                    operator[key] = sorted(value)
    return json.dumps(statements, sort_keys=True, indent=1)


async def test_deploy_policy_file_is_the_generated_policy_of_the_demo_config(
    sandbox: Any, demo_config: Config
) -> None:
    committed = json.loads((ROOT / "deploy" / "iam-policy.json").read_text())
    assert normalized(committed) == normalized(await demo_policy(demo_config, sandbox)), (
        "regenerate: kajitori iam-policy --config examples/demo.yaml > deploy/iam-policy.json"
    )


async def test_generated_policy_allows_every_call_the_demo_commands_make(
    sandbox: Any, demo_config: Config, bot: Bot
) -> None:
    policy = await demo_policy(demo_config, sandbox)
    aws_calls.RECORDED.clear()
    for text in (
        "status api staging",
        "status web production",
        "status worker staging",
        "limits",
        "deploy api staging v2",
        "scale out api staging +1",
        "scale out web staging +1",
        "scale out worker staging +1",
        "scale out web staging -1",
        "scale up web staging t3.large",
        "scale up main staging db.r6g.xlarge",
    ):
        await run(bot, text)
    await AdminSecrets(bot.aws, Redactor([])).admin(
        "kajitori/main-staging/admin", demo_config.scope("staging")
    )
    recorded = list(aws_calls.RECORDED)
    tags = instance_tags(sandbox)
    judged = [(call, check) for call in recorded for check in checks(call, ACCOUNT, tags)]
    actions = {check.action for _, check in judged}
    # The commands above reach every kind of write the policy scopes.
    assert {
        "ecs:UpdateService",
        "ecs:RegisterTaskDefinition",
        "iam:PassRole",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:StopInstances",
        "ec2:ModifyInstanceAttribute",
        "ec2:CreateLaunchTemplateVersion",
        "elasticloadbalancing:RegisterTargets",
        "autoscaling:UpdateAutoScalingGroup",
        "rds:ModifyDBInstance",
        "secretsmanager:GetSecretValue",
    } <= actions, sorted(actions)
    denied = sorted(
        {f"{c.action} {c.resource} {c.context}" for call, c in judged if not allows(policy, c)}
    )
    assert not denied, denied


async def test_generated_policy_denies_calls_on_what_the_config_does_not_name(
    sandbox: Any, demo_config: Config
) -> None:
    policy = await demo_policy(demo_config, sandbox)

    def arn(service: str, resource: str, account: str = ACCOUNT) -> str:
        return f"arn:aws:{service}:{REGION}:{account}:{resource}"

    template = next(
        r
        for s in policy["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        if ":launch-template/" in r
    )
    other_template = arn("ec2", "launch-template/lt-0123456789abcdef0")
    web_tags = {
        "aws:ResourceTag/kajitori:service": "web",
        "aws:ResourceTag/kajitori:env": "staging",
    }
    allowed = [
        Check("ecs:UpdateService", arn("ecs", "service/staging/api")),
        Check("ec2:RunInstances", arn("ec2", "instance/*"), {"ec2:LaunchTemplate": template}),
        Check("ec2:TerminateInstances", arn("ec2", "instance/i-1"), web_tags),
        Check(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/api-staging-task",
            {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
        ),
    ]
    # The same checks pass for what the config names, so a denial below is the resource's.
    for check in allowed:
        assert allows(policy, check), check
    denied = [
        Check("ecs:UpdateService", arn("ecs", "service/staging/billing")),
        Check("ecs:UpdateService", arn("ecs", "service/payments/api")),
        Check(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/admin",
            {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
        ),
        Check(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/api-staging-task",
            {"iam:PassedToService": "lambda.amazonaws.com"},
        ),
        Check(
            "ecs:TagResource",
            arn("ecs", "task-definition/billing:1"),
            {"ecs:CreateAction": "RegisterTaskDefinition"},
        ),
        Check("ec2:RunInstances", other_template, {"ec2:LaunchTemplate": other_template}),
        Check("ec2:RunInstances", arn("ec2", "instance/*"), {"ec2:LaunchTemplate": other_template}),
        Check("ec2:RunInstances", arn("ec2", "instance/*"), {}),
        Check(
            "ec2:TerminateInstances",
            arn("ec2", "instance/i-2"),
            {
                "aws:ResourceTag/kajitori:service": "database",
                "aws:ResourceTag/kajitori:env": "staging",
            },
        ),
        Check("ec2:StopInstances", arn("ec2", "instance/i-3"), {}),
        Check("ec2:CreateLaunchTemplateVersion", other_template),
        Check(
            "elasticloadbalancing:RegisterTargets",
            arn("elasticloadbalancing", "targetgroup/billing-tg/0123456789abcdef"),
        ),
        Check(
            "autoscaling:UpdateAutoScalingGroup",
            arn("autoscaling", "autoScalingGroup:1-2-3:autoScalingGroupName/billing"),
        ),
        Check("rds:ModifyDBInstance", arn("rds", "db:billing-1")),
        Check("rds:ModifyDBInstance", arn("rds", "db:main-staging-1", "999999999999")),
        Check("secretsmanager:GetSecretValue", arn("secretsmanager", "secret:prod/root-AbC123")),
        Check("ecr:DescribeImages", arn("ecr", "repository/billing")),
        Check("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/intruder"),
        Check("ec2:ModifyInstanceAttribute", arn("ec2", "instance/i-4"), {}),
    ]
    wrongly_allowed = [c for c in denied if allows(policy, c)]
    assert not wrongly_allowed, wrongly_allowed
