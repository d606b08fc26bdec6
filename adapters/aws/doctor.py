"""`kajitori doctor`: can each environment's AWS access be used, does it reach the account
the config says, and can it see what the config names? One dry read per resource."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws.clients import AwsClients
from bot.config import Config, Environment
from bot.errors import KajitoriError


@dataclass
class AccessCheck:
    env: str
    role: str  # the role ARN, or "(base credentials)"
    account: str = ""
    identity_ok: bool = False
    account_ok: bool = False
    seen: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.identity_ok and self.account_ok and all(self.seen.values())


def _why(error: BaseException) -> str:
    if isinstance(error, KajitoriError):
        return error.message
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code')}: {detail.get('Message')}"
    if isinstance(error, BotoCoreError):
        return str(error)
    return type(error).__name__


async def check_environment(aws: AwsClients, name: str, env: Environment) -> AccessCheck:
    scope = env.scope
    check = AccessCheck(env=name, role=aws.role_of(name) or "(base credentials)")
    try:
        sts = await aws.client("sts", scope)
        identity = await sts.get_caller_identity()
    except (KajitoriError, ClientError, BotoCoreError) as error:
        check.problems.append(_why(error))
        return check
    check.identity_ok = True
    check.account = str(identity["Account"])
    expected = await aws.account(scope) if env.aws else check.account
    check.account_ok = check.account == expected
    if not check.account_ok:
        check.problems.append(f"reached account {check.account}, the config says {expected}")
    ecs = await aws.client("ecs", scope)
    ec2 = await aws.client("ec2", scope)
    elbv2 = await aws.client("elbv2", scope)
    autoscaling = await aws.client("autoscaling", scope)
    rds = await aws.client("rds", scope)
    reads: dict[str, Callable[[], Awaitable[Any]]] = {}
    for service_name, service in env.services.items():
        if service.ecs is not None:
            target = service.ecs

            async def ecs_service(cluster: str = target.cluster, name: str = target.service) -> Any:
                found = await ecs.describe_services(cluster=cluster, services=[name])
                if not [s for s in found.get("services", []) if s.get("status") != "INACTIVE"]:
                    raise KajitoriError(f"ECS service {cluster}/{name} not found")

            reads[service_name] = ecs_service
        elif service.fleet is not None:
            fleet = service.fleet

            async def fleet_parts(
                template: str = fleet.launch_template, group: str = fleet.target_group
            ) -> Any:
                await ec2.describe_launch_template_versions(
                    LaunchTemplateName=template, Versions=["$Default"]
                )
                await elbv2.describe_target_groups(Names=[group])

            reads[service_name] = fleet_parts
        elif service.asg is not None:

            async def asg(name: str = service.asg.name) -> Any:
                found = await autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
                if not found.get("AutoScalingGroups"):
                    raise KajitoriError(f"Auto Scaling group {name} not found")

            reads[service_name] = asg
    for db_name, database in env.databases.items():
        if database.cluster:

            async def cluster(identifier: str = database.cluster) -> Any:
                await rds.describe_db_clusters(DBClusterIdentifier=identifier)

            reads[f"db {db_name}"] = cluster

    async def see(what: str, read: Callable[[], Awaitable[Any]]) -> None:
        try:
            await read()
        except (KajitoriError, ClientError, BotoCoreError) as error:
            check.seen[what] = False
            check.problems.append(f"{what}: {_why(error)}")
        else:
            check.seen[what] = True

    await asyncio.gather(*(see(what, read) for what, read in reads.items()))
    check.seen = dict(sorted(check.seen.items()))
    return check


async def check_all(aws: AwsClients, config: Config) -> list[AccessCheck]:
    """Every environment, at once; one environment's failure does not stop the others."""
    return list(
        await asyncio.gather(
            *(check_environment(aws, name, env) for name, env in config.environments.items())
        )
    )


def report_rows(checks: list[AccessCheck]) -> list[list[str]]:
    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    rows = []
    for check in checks:
        seen = ", ".join(f"{what} {mark(ok)}" for what, ok in check.seen.items())
        rows.append(
            [
                check.env,
                check.role,
                f"{mark(check.identity_ok)} {check.account}".rstrip(),
                mark(check.account_ok) if check.identity_ok else "",
                seen,
                "; ".join(check.problems),
            ]
        )
    return rows


COLUMNS = ["environment", "role", "identity", "account", "can see", "why"]
