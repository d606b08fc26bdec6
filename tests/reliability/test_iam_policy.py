"""deploy/iam-policy.json (`kajitori iam-policy` for the demo config) grants every AWS call
the adapters make, and no action by wildcard.

The calls are found in the adapters' source: every method named after an operation of a
service whose client the same file creates (`client("ecs", ...)`), including paginators.
A call added to an adapter without its permission fails here, before it fails in AWS.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from botocore import xform_name
from botocore.session import get_session

ROOT = Path(__file__).parent.parent.parent
POLICY = ROOT / "deploy" / "iam-policy.json"

# botocore's service name -> the IAM action prefix.
IAM_PREFIX = {
    "autoscaling": "autoscaling",
    "dynamodb": "dynamodb",
    "ec2": "ec2",
    "ecr": "ecr",
    "ecs": "ecs",
    "elbv2": "elasticloadbalancing",
    "rds": "rds",
    "route53": "route53",
    "secretsmanager": "secretsmanager",
    "service-quotas": "servicequotas",
    "sts": "sts",
    "ssm": "ssm",
    "sqs": "sqs",
    "health": "health",
}
# Operations whose IAM action is another's: SQS authorizes a batch with the action of one
# ("Amazon SQS API permissions: Actions and resource reference").
IAM_ACTION_OF = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}
# The store creates its table only where it may (a sandbox, a first try); in production
# the table comes from deploy/dynamodb-table.yaml and the policy leaves these out. The demo
# config's store is SQLite, so its policy has no table at all (tests/access checks the
# table's statement for a DynamoDB store).
TABLE_CREATION = {"dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"}
# Needs no permission (it tells who the caller is), or is granted in the account kajitori
# runs in only when an environment has a role (the demo's do not).
NO_DEMO_PERMISSION = {"sts:GetCallerIdentity", "sts:AssumeRole"}

_CLIENT = re.compile(r"""(?:client|create_client)\(\s*["']([a-z0-9-]+)["']""")
_CALL = re.compile(r"""\.([a-z][a-z0-9_]*)\(""")
# Operation names given as strings: paginators, and helpers that take the operation.
_NAMED = re.compile(r"""["']([a-z][a-z0-9_]*)["']""")
_WAITER = re.compile(r"""get_waiter\(\s*["']([a-z0-9_]+)["']""")


def operations(service: str) -> dict[str, str]:
    model = get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def waiter_operation(service: str, waiter: str) -> str:
    name = "".join(part.title() for part in waiter.split("_"))
    operation: str = get_session().get_waiter_model(service).get_waiter(name).operation
    return operation


def calls_in_adapters() -> dict[frozenset[str], set[Path]]:
    """The IAM actions the adapters need -> the files that need them.

    A key is usually one action. An operation named only by a string (a paginator, a helper
    taking the operation) that several of the file's services have is a key of each of those
    services' actions: any one of them is the call.
    """
    needed: dict[frozenset[str], set[Path]] = {}
    for path in sorted((ROOT / "adapters").rglob("*.py")):
        if "sandbox" in path.parts:
            continue
        source = path.read_text()
        services = sorted({s for s in _CLIENT.findall(source) if s in IAM_PREFIX})
        known = {service: operations(service) for service in services}
        keys: set[frozenset[str]] = set()
        for method in set(_CALL.findall(source)):
            for service in services:
                if method in known[service]:
                    keys.add(frozenset({f"{IAM_PREFIX[service]}:{known[service][method]}"}))
        for name in set(_NAMED.findall(source)) - set(_CALL.findall(source)):
            candidates = frozenset(
                f"{IAM_PREFIX[service]}:{known[service][name]}"
                for service in services
                if name in known[service]
            )
            if candidates:
                keys.add(candidates)
        for waiter in _WAITER.findall(source):
            for service in services:
                keys.add(frozenset({f"{IAM_PREFIX[service]}:{waiter_operation(service, waiter)}"}))
        for key in keys:
            actions = frozenset(IAM_ACTION_OF.get(action, action) for action in key)
            needed.setdefault(actions, set()).add(path)
    return needed


def allowed_actions() -> list[str]:
    policy = json.loads(POLICY.read_text())
    actions: list[str] = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        value = statement["Action"]
        actions.extend([value] if isinstance(value, str) else value)
    return actions


def test_policy_allows_every_aws_call_the_adapters_make() -> None:
    needed = calls_in_adapters()
    # The scan found the adapters' calls at all (a broken scan would pass vacuously).
    for action in ("ecs:UpdateService", "ec2:RunInstances", "rds:ModifyDBInstance"):
        assert frozenset({action}) in needed, sorted(needed, key=sorted)
    allowed = allowed_actions()
    missing = {
        " or ".join(sorted(actions)): sorted(str(p.relative_to(ROOT)) for p in paths)
        for actions, paths in needed.items()
        if not actions & TABLE_CREATION
        and not actions & NO_DEMO_PERMISSION
        and not any(a.startswith("dynamodb:") for a in actions)
        and not any(
            fnmatch.fnmatchcase(action, pattern) for action in actions for pattern in allowed
        )
    }
    assert not missing, f"add to deploy/iam-policy.json: {missing}"


def test_policy_names_each_action_without_wildcards() -> None:
    for action in allowed_actions():
        assert "*" not in action and "?" not in action, action


def test_policy_grants_no_action_the_adapters_do_not_use() -> None:
    needed = set().union(*calls_in_adapters())
    # Granted because AWS checks them alongside a call the adapters make.
    implied = {"iam:PassRole", "ecs:TagResource", "ec2:CreateTags"}
    unused = set(allowed_actions()) - needed - implied
    assert not unused, f"remove from deploy/iam-policy.json: {sorted(unused)}"


def test_policy_writes_are_scoped_to_resources() -> None:
    policy = json.loads(POLICY.read_text())
    read_prefixes = ("Describe", "List", "Get")
    for statement in policy["Statement"]:
        actions = statement["Action"]
        writes = [a for a in actions if not a.split(":", 1)[1].startswith(read_prefixes)]
        # RegisterTaskDefinition takes no resource ARN: AWS accepts only "*" for it.
        if writes and writes != ["ecs:RegisterTaskDefinition"]:
            assert statement["Resource"] != "*", statement["Sid"]
    secrets = [s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
    # Exactly the configured admin secrets (a secret's ARN ends in six random characters).
    assert [s["Resource"] for s in secrets] == [
        [
            f"arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kajitori/main-{env}/admin-??????"
            for env in ("production", "staging")
        ]
    ]
