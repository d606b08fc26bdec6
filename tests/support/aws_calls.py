"""Every AWS call kajitori's aiobotocore clients make during the tests, recorded through
botocore's client plugin hook (`BOTOCORE_EXPERIMENTAL__PLUGINS`, set in tests/conftest.py)
and its `provide-client-params` event; and what IAM checks for each call: the action, the
resource ARNs and the condition keys AWS fills in. The setup code of the tests (boto3,
not aiobotocore) is left out: it is not kajitori.

The policies are evaluated with moto's IAM policy evaluator (`moto.iam.access_control`),
one statement at a time: kajitori's policies only allow, and a statement whose condition
does not hold allows nothing (moto reports it as a denial of the whole policy).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiobotocore.client import AioBaseClient

IAM_PREFIX = {"elbv2": "elasticloadbalancing", "service-quotas": "servicequotas"}


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    region: str


@dataclass
class Check:
    """One thing IAM decides for a call."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


RECORDED: list[Call] = []
ROOT = Path(__file__).parent.parent.parent
_KAJITORI = tuple(str(ROOT / part) + os.sep for part in ("adapters", "commands", "bot"))
_TESTS = str(ROOT / "tests") + os.sep


def _made_by_kajitori() -> bool:
    """Whether the call comes from kajitori's code, not from a test's setup through the
    bot's clients: the innermost frame of the project decides."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_KAJITORI):
            return True
        if name.startswith(_TESTS):
            return False
        frame = frame.f_back
    return False


def initialize_client_plugin(client: Any) -> None:
    # Only in the test process: subprocesses (the CLI, the demo) inherit the variable.
    if os.environ.get("KAJITORI_RECORD_PID") != str(os.getpid()):
        return
    if not isinstance(client, AioBaseClient):
        return
    service = client.meta.service_model.service_name
    region = client.meta.region_name

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if _made_by_kajitori():
            RECORDED.append(Call(service, model.name, dict(params), region))

    client.meta.events.register("provide-client-params", record, unique_id="kajitori-record")


def checks(call: Call, account: str, tags: dict[str, dict[str, str]] | None = None) -> list[Check]:
    """What IAM checks for `call` in `account`; `tags`: instance id -> its tags. A call
    without the parameters that name its resource is checked on "*"."""
    try:
        return _checks(call, account, tags)
    except KeyError:
        action = f"{IAM_PREFIX.get(call.service, call.service)}:{call.operation}"
        return [Check(AUTHORIZED_AS.get(action, action), "*")]


# Calls IAM authorizes as another action (AWS documents DeleteMessageBatch under
# sqs:DeleteMessage).
AUTHORIZED_AS = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}


def _checks(call: Call, account: str, tags: dict[str, dict[str, str]] | None) -> list[Check]:
    p, r, a = call.params, call.region, account
    action = f"{IAM_PREFIX.get(call.service, call.service)}:{call.operation}"
    action = AUTHORIZED_AS.get(action, action)

    def arn(service: str, resource: str, region: str = r, acct: str = a) -> str:
        return f"arn:aws:{service}:{region}:{acct}:{resource}"

    if call.service == "sts":
        if call.operation == "AssumeRole":
            return [Check(action, p["RoleArn"])]
        return []  # GetCallerIdentity needs no permission
    if call.service == "ecs":
        cluster = str(p.get("cluster", "default")).rsplit("/", 1)[-1]
        if call.operation == "DescribeServices":
            return [
                Check(action, arn("ecs", f"service/{cluster}/{s.rsplit('/', 1)[-1]}"))
                for s in p["services"]
            ]
        if call.operation == "UpdateService":
            return [Check(action, arn("ecs", f"service/{cluster}/{p['service']}"))]
        if call.operation == "DescribeTasks":
            return [
                Check(action, arn("ecs", f"task/{cluster}/{t.rsplit('/', 1)[-1]}"))
                for t in p["tasks"]
            ]
        if call.operation == "RegisterTaskDefinition":
            out = [Check(action, "*")]
            for key in ("taskRoleArn", "executionRoleArn"):
                if p.get(key):
                    out.append(
                        Check(
                            "iam:PassRole",
                            p[key],
                            {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
                        )
                    )
            if p.get("tags"):
                out.append(
                    Check(
                        "ecs:TagResource",
                        arn("ecs", f"task-definition/{p['family']}:1"),
                        {"ecs:CreateAction": "RegisterTaskDefinition"},
                    )
                )
            return out
        return [Check(action, "*")]
    if call.service == "ecr" and call.operation == "DescribeImages":
        registry = p.get("registryId", a)
        return [Check(action, arn("ecr", f"repository/{p['repositoryName']}", acct=registry))]
    if call.service == "ec2":
        if call.operation == "RunInstances":
            spec = p["LaunchTemplate"]
            template = arn("ec2", f"launch-template/{spec['LaunchTemplateId']}")
            context = {"ec2:LaunchTemplate": template}
            subnet = p.get("SubnetId") or next(
                (i.get("SubnetId") for i in p.get("NetworkInterfaces", []) if i.get("SubnetId")),
                "subnet-default",
            )
            out = [
                Check(action, template, context),
                Check(action, arn("ec2", f"subnet/{subnet}"), context),
            ]
            out += [
                Check(action, arn("ec2", f"{kind}/*"), context)
                for kind in ("instance", "volume", "network-interface", "security-group")
            ]
            out.append(Check(action, arn("ec2", "image/ami-any", acct=""), context))
            if p.get("TagSpecifications"):
                out.append(
                    Check(
                        "ec2:CreateTags",
                        arn("ec2", "instance/i-new"),
                        {"ec2:CreateAction": "RunInstances"},
                    )
                )
            return out
        if call.operation in (
            "StartInstances",
            "StopInstances",
            "TerminateInstances",
            "ModifyInstanceAttribute",
        ):
            ids = p.get("InstanceIds") or [p["InstanceId"]]
            return [
                Check(
                    action,
                    arn("ec2", f"instance/{i}"),
                    {
                        f"aws:ResourceTag/{k}": v
                        for k, v in (tags or {}).get(i, {}).items()
                        if k.startswith("kajitori:")
                    },
                )
                for i in ids
            ]
        if call.operation in ("CreateLaunchTemplateVersion", "ModifyLaunchTemplate"):
            return [Check(action, arn("ec2", f"launch-template/{p['LaunchTemplateId']}"))]
        return [Check(action, "*")]
    if call.service == "elbv2" and call.operation in ("RegisterTargets", "DeregisterTargets"):
        return [Check(action, p["TargetGroupArn"])]
    if call.service == "autoscaling" and call.operation == "UpdateAutoScalingGroup":
        name = p["AutoScalingGroupName"]
        return [
            Check(
                action,
                arn(
                    "autoscaling",
                    f"autoScalingGroup:0e7f-any-uuid:autoScalingGroupName/{name}",
                ),
            )
        ]
    if call.service == "rds":
        if call.operation == "DescribeDBClusters" and p.get("DBClusterIdentifier"):
            return [Check(action, arn("rds", f"cluster:{p['DBClusterIdentifier']}"))]
        if call.operation in ("DescribeDBInstances", "ModifyDBInstance") and p.get(
            "DBInstanceIdentifier"
        ):
            return [Check(action, arn("rds", f"db:{p['DBInstanceIdentifier']}"))]
        return [Check(action, "*")]
    if call.service == "secretsmanager":
        secret = p["SecretId"]
        if not secret.startswith("arn:"):
            secret = arn("secretsmanager", f"secret:{secret}-AbC123")
        return [Check(action, secret)]
    if call.service == "dynamodb":
        table = arn("dynamodb", f"table/{p['TableName']}")
        if p.get("IndexName"):
            table += f"/index/{p['IndexName']}"
        return [Check(action, table)]
    return [Check(action, "*")]


def allows(policy: dict[str, Any], check: Check) -> bool:
    """Whether `policy` (Allow statements only) allows `check`, by moto's evaluator."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", statement
        # IAM's `?` is one character; moto's matcher reads patterns as regular expressions.
        resources = statement.get("Resource")
        if isinstance(resources, str):
            resources = [resources]
        adapted = {
            **statement,
            "Resource": [re.sub(r"\?", ".", r) for r in resources or []],
        }
        result = IAMPolicyStatement(adapted).is_action_permitted(
            check.action, check.resource, incoming_condition_values=_context(statement, check)
        )
        if result == PermissionResult.PERMITTED:
            return True
    return False


def _context(statement: dict[str, Any], check: Check) -> dict[str, str]:
    """The condition values of `check`, with every key the statement names present (moto
    lines values up with keys by position; a missing key is an empty value, as in AWS)."""
    context = dict(check.context)
    for values in statement.get("Condition", {}).values():
        for key in values:
            context.setdefault(key, "")
    return context
