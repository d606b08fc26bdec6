"""Quotas and their usage on aiobotocore: Service Quotas values (applied, else AWS's default),
the On-Demand Standard vCPUs in use, and every limit `limits` shows.

`limits` fans out: all regions at once, every call of a region at once, the hosted zones at
once, so its wall time is about the slowest chain of dependent calls (two), not the sum."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from bot.config import AwsScope
from bot.errors import KajitoriError, Refused
from bot.ports.capacity import (
    ALBS_PER_REGION,
    AUTO_SCALING_GROUPS_PER_REGION,
    EC2_ELASTIC_IPS,
    EC2_STANDARD_VCPUS,
    ROUTE53_SCOPE,
    TARGET_GROUPS_PER_REGION,
    VPCS_PER_REGION,
    InstanceType,
    LimitReport,
    LimitUsage,
    Quota,
    is_standard_on_demand,
)

_TYPES_PER_CALL = 100  # DescribeInstanceTypes takes at most 100 names


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or error_code(error)


async def describe_instance_types(ec2: Any, names: Sequence[str]) -> dict[str, InstanceType]:
    """The known types among `names`. DescribeInstanceTypes fails the whole request for one
    unknown name, so on that error the names are asked for one by one."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    if len(wanted) > _TYPES_PER_CALL:
        found: dict[str, InstanceType] = {}
        chunks = [wanted[i : i + _TYPES_PER_CALL] for i in range(0, len(wanted), _TYPES_PER_CALL)]
        for part in await asyncio.gather(*(describe_instance_types(ec2, c) for c in chunks)):
            found.update(part)
        return found
    try:
        response = await ec2.describe_instance_types(InstanceTypes=wanted)
    except ClientError as error:
        if error_code(error) not in ("InvalidInstanceType", "InvalidParameterValue"):
            raise
        if len(wanted) == 1:
            return {}
        known: dict[str, InstanceType] = {}
        for part in await asyncio.gather(*(describe_instance_types(ec2, [n]) for n in wanted)):
            known.update(part)
        return known
    return {
        t["InstanceType"]: InstanceType(
            name=t["InstanceType"],
            vcpus=int(t.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
            architectures=list(t.get("ProcessorInfo", {}).get("SupportedArchitectures", [])),
        )
        for t in response.get("InstanceTypes", [])
    }


class AwsQuotas:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def quota(self, scope: AwsScope, service_code: str, code: str) -> Quota:
        client = await self._clients.client("service-quotas", scope)
        applied = True
        try:
            try:
                response = await client.get_service_quota(ServiceCode=service_code, QuotaCode=code)
            except ClientError as error:
                if error_code(error) != "NoSuchResourceException":
                    raise
                # Never raised in this account: the quota is AWS's default.
                applied = False
                response = await client.get_aws_default_service_quota(
                    ServiceCode=service_code, QuotaCode=code
                )
        except ClientError as error:
            raise Refused(
                f"cannot read quota {code} ({service_code}) in {scope.region}: "
                f"{error_code(error)}: {error_message(error)}"
            ) from None
        raw = response["Quota"]
        return Quota(
            service_code=service_code,
            code=code,
            name=str(raw.get("QuotaName", code)),
            value=float(raw["Value"]),
            applied=applied,
        )

    async def standard_vcpus_in_use(self, scope: AwsScope) -> int:
        ec2 = await self._clients.client("ec2", scope)
        types: list[str] = []
        paginator = ec2.get_paginator("describe_instances")
        filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        async for page in paginator.paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                types.extend(
                    i["InstanceType"]
                    for i in reservation.get("Instances", [])
                    if i.get("InstanceLifecycle") != "spot"
                    and is_standard_on_demand(i["InstanceType"])
                )
        known = await describe_instance_types(ec2, types)
        return sum(known[t].vcpus for t in types if t in known)

    async def fargate_vcpus_in_use(self, scope: AwsScope) -> float:
        ecs = await self._clients.client("ecs", scope)
        clusters: list[str] = []
        async for page in ecs.get_paginator("list_clusters").paginate():
            clusters.extend(page.get("clusterArns", []))

        async def cluster_vcpus(cluster: str) -> float:
            arns: list[str] = []
            async for page in ecs.get_paginator("list_tasks").paginate(
                cluster=cluster, desiredStatus="RUNNING"
            ):
                arns.extend(page.get("taskArns", []))
            total = 0.0
            for start in range(0, len(arns), 100):  # DescribeTasks takes 100 at most
                described = await ecs.describe_tasks(
                    cluster=cluster, tasks=arns[start : start + 100]
                )
                total += sum(
                    int(task["cpu"]) / 1024
                    for task in described.get("tasks", [])
                    if task.get("launchType") == "FARGATE" and str(task.get("cpu", "")).isdigit()
                )
            return total

        return sum(await asyncio.gather(*(cluster_vcpus(c) for c in clusters)))

    # limits

    async def _vcpus(self, scope: AwsScope) -> list[LimitUsage]:
        quota, used = await asyncio.gather(
            self.quota(scope, "ec2", EC2_STANDARD_VCPUS), self.standard_vcpus_in_use(scope)
        )
        return [
            LimitUsage(
                scope=scope.region,
                name="EC2 On-Demand Standard vCPUs",
                used=used,
                limit=quota.value,
                code=quota.code,
            )
        ]

    async def _elastic_ips(self, scope: AwsScope) -> list[LimitUsage]:
        ec2 = await self._clients.client("ec2", scope)
        quota, addresses = await asyncio.gather(
            self.quota(scope, "ec2", EC2_ELASTIC_IPS), ec2.describe_addresses()
        )
        used = len(addresses.get("Addresses", []))
        return [
            LimitUsage(
                scope=scope.region,
                name="Elastic IPs",
                used=used,
                limit=quota.value,
                code=quota.code,
            )
        ]

    async def _vpcs(self, scope: AwsScope) -> list[LimitUsage]:
        ec2 = await self._clients.client("ec2", scope)

        async def count() -> int:
            total = 0
            async for page in ec2.get_paginator("describe_vpcs").paginate():
                total += len(page.get("Vpcs", []))
            return total

        quota, used = await asyncio.gather(self.quota(scope, "vpc", VPCS_PER_REGION), count())
        return [
            LimitUsage(
                scope=scope.region, name="VPCs", used=used, limit=quota.value, code=quota.code
            )
        ]

    async def _load_balancing(self, scope: AwsScope) -> list[LimitUsage]:
        elbv2 = await self._clients.client("elbv2", scope)

        async def count(operation: str, key: str, kind: str | None = None) -> int:
            total = 0
            async for page in elbv2.get_paginator(operation).paginate():
                total += sum(
                    1 for item in page.get(key, []) if kind is None or item["Type"] == kind
                )
            return total

        limits, balancers, groups = await asyncio.gather(
            elbv2.describe_account_limits(),
            count("describe_load_balancers", "LoadBalancers", "application"),
            count("describe_target_groups", "TargetGroups"),
        )
        maxima = {limit["Name"]: float(limit["Max"]) for limit in limits.get("Limits", [])}
        rows = []
        if "application-load-balancers" in maxima:
            rows.append(
                LimitUsage(
                    scope=scope.region,
                    name="Application Load Balancers",
                    used=balancers,
                    limit=maxima["application-load-balancers"],
                    code=ALBS_PER_REGION,
                )
            )
        if "target-groups" in maxima:
            rows.append(
                LimitUsage(
                    scope=scope.region,
                    name="Target groups",
                    used=groups,
                    limit=maxima["target-groups"],
                    code=TARGET_GROUPS_PER_REGION,
                )
            )
        return rows

    async def _auto_scaling(self, scope: AwsScope) -> list[LimitUsage]:
        autoscaling = await self._clients.client("autoscaling", scope)
        limits = await autoscaling.describe_account_limits()
        return [
            LimitUsage(
                scope=scope.region,
                name="Auto Scaling groups",
                used=float(limits.get("NumberOfAutoScalingGroups", 0)),
                limit=float(limits["MaxNumberOfAutoScalingGroups"]),
                code=AUTO_SCALING_GROUPS_PER_REGION,
            )
        ]

    async def _hosted_zones(self, scope: AwsScope) -> list[LimitUsage]:
        route53 = await self._clients.client("route53", scope)
        zones: list[dict[str, Any]] = []
        async for page in route53.get_paginator("list_hosted_zones").paginate():
            zones.extend(page.get("HostedZones", []))

        async def records(zone: dict[str, Any]) -> LimitUsage:
            response = await route53.get_hosted_zone_limit(
                Type="MAX_RRSETS_BY_ZONE", HostedZoneId=zone["Id"]
            )
            return LimitUsage(
                scope=ROUTE53_SCOPE,
                name=f"records in {zone['Name'].rstrip('.')}",
                used=float(response["Count"]),
                limit=float(response["Limit"]["Value"]),
            )

        return list(await asyncio.gather(*(records(zone) for zone in zones)))

    async def limits(self, scopes: Sequence[AwsScope]) -> LimitReport:
        report = LimitReport()
        readers: dict[str, Callable[[AwsScope], Awaitable[list[LimitUsage]]]] = {
            "EC2 vCPUs": self._vcpus,
            "Elastic IPs": self._elastic_ips,
            "VPCs": self._vpcs,
            "load balancers": self._load_balancing,
            "Auto Scaling groups": self._auto_scaling,
        }
        # Limits belong to an account and a region: environments that share both are read once.
        places: dict[tuple[str, str], AwsScope] = {}
        for scope in scopes:
            try:
                account = await self._clients.account(scope)
            except KajitoriError as error:
                report.failures.append(f"{scope.env or scope.region}: {error.message[:200]}")
                continue
            places.setdefault((account, scope.region), scope)
        several = len({account for account, _ in places}) > 1

        async def read(
            account: str,
            scope: AwsScope,
            what: str,
            reader: Callable[[AwsScope], Awaitable[list[LimitUsage]]],
        ) -> None:
            where = f"{account} {scope.region}" if several else scope.region
            if reader is self._hosted_zones:
                where = f"{account} Route 53" if several else "Route 53"
            # One limit that cannot be read must not hide the others.
            try:
                rows = await reader(scope)
            except ClientError as error:
                failure = f"{error_code(error)}: {error_message(error)}"
                report.failures.append(f"{where} {what}: {failure[:160]}")
            except KajitoriError as error:
                report.failures.append(f"{where} {what}: {error.message[:160]}")
            except Exception as error:  # a timeout, a refused connection, a bad answer
                report.failures.append(f"{where} {what}: {type(error).__name__}")
            else:
                report.rows.extend(row.model_copy(update={"account": account}) for row in rows)

        accounts: dict[str, AwsScope] = {}
        async with asyncio.TaskGroup() as group:
            for (account, _), scope in places.items():
                for what, reader in readers.items():
                    group.create_task(read(account, scope, what, reader))
                accounts.setdefault(account, scope)
            # Route 53 is global: each account's zones are read once, through one region.
            for account, scope in accounts.items():
                group.create_task(read(account, scope, "hosted zones", self._hosted_zones))
        return report
