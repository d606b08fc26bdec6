"""`events [ENV]`: what AWS will do soon to an environment's resources, soonest first.

Each environment is read through its own credentials (its role, its account) in its region;
environments that share an account and a region share one read. An item is shown for the
service whose resource it concerns: EC2 events by the instances of fleets, Auto Scaling
groups and ECS clusters, RDS maintenance by the configured databases (clusters and their
instances), AWS Health events by their affected entities. A Health event that concerns the
account as a whole is shown once per account and region, marked account-wide; an item that
concerns no configured service is counted (and, for every environment, listed) under the
table, never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.config import AwsScope, Environment
from bot.errors import KajitoriError
from bot.messages import Message, Table
from bot.ports.events import Upcoming
from bot.spec import Arg, CommandSpec, Context

log = logging.getLogger(__name__)

_FAR = datetime.max.replace(tzinfo=UTC)
# Entity values AWS Health uses for an event that is not about one resource.
_ACCOUNT_MARKERS = frozenset({"AWS_ACCOUNT", "UNKNOWN"})
# Unmatched items listed one by one in the note; more are counted.
_UNMATCHED_SHOWN = 5


@dataclass(frozen=True)
class Owner:
    """The service (or database) of one environment a resource belongs to."""

    label: str  # "web/staging", "db main/staging"
    env: str


@dataclass
class Ownership:
    """Resource keys (instance ids, DB ids, group names, `cluster/service`) to their owners."""

    owners: dict[str, list[Owner]] = field(default_factory=dict)

    def add(self, keys: Sequence[str], owner: Owner) -> None:
        for key in keys:
            found = self.owners.setdefault(key, [])
            if owner not in found:
                found.append(owner)

    def of(self, value: str) -> list[Owner]:
        """The owners of a resource named by id, name or ARN."""
        candidates = [value, value.rsplit(":", 1)[-1], value.rsplit("/", 1)[-1]]
        if ":service/" in value:  # arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE
            candidates.append(value.split(":service/", 1)[1])
        if "autoScalingGroupName/" in value:
            candidates.append(value.split("autoScalingGroupName/", 1)[1])
        for candidate in candidates:
            if candidate in self.owners:
                return self.owners[candidate]
        return []


@dataclass
class Place:
    """One account and region, and the environments (of those asked about) in it."""

    account: str
    region: str
    envs: list[str]


def _reason(ctx: Context, error: BaseException) -> str:
    if isinstance(error, KajitoriError):
        return error.message[:200]
    return ctx.services.explain_failure(error) or type(error).__name__


def _database_ids(reader: str, cluster: str | None) -> tuple[str | None, str | None]:
    """The cluster and the DB instance a database's config names: `cluster:`, else the
    first label of the reader endpoint (`ID.cluster-ro-XYZ.REGION.rds.amazonaws.com` is a
    cluster, `ID.XYZ.REGION.rds.amazonaws.com` an instance)."""
    if cluster is not None:
        return cluster, None
    labels = reader.split(".")
    if len(labels) < 4 or not reader.endswith(".rds.amazonaws.com"):
        return None, None
    if re.match(r"cluster-(ro-|custom-)?", labels[1]):
        return labels[0], None
    return None, labels[0]


async def _env_resources(
    ctx: Context, name: str, env: Environment, ownership: Ownership
) -> list[str]:
    """Record the resources of one environment's services and databases; what could not
    be read, one line each."""
    ports = ctx.services
    scope = env.scope
    reads: list[tuple[str, list[Owner], Awaitable[list[str]]]] = []

    async def fleet(service: str) -> list[str]:
        return [i.id for i in await ports.ec2.fleet_instances(scope, service, name)]

    async def group(group_name: str) -> list[str]:
        found = await ports.autoscaling.group(scope, group_name)
        return [group_name, *(i.id for i in found.instances)]

    async def database(cluster: str | None, instance: str | None) -> list[str]:
        if cluster is None:
            return [instance] if instance else []
        members = await ports.rds.cluster(scope, cluster)
        return [cluster, *(m.id for m in members.members)]

    # A cluster's container instances host every ECS service on it.
    ecs_clusters: dict[str, list[Owner]] = {}
    for service_name, service in env.services.items():
        owner = Owner(f"{service_name}/{name}", name)
        if service.fleet is not None:
            reads.append((f"the instances of {service_name}", [owner], fleet(service_name)))
        elif service.asg is not None:
            what = f"Auto Scaling group {service.asg.name}"
            reads.append((what, [owner], group(service.asg.name)))
        elif service.ecs is not None:
            ownership.add([f"{service.ecs.cluster}/{service.ecs.service}"], owner)
            ecs_clusters.setdefault(service.ecs.cluster, []).append(owner)
    for ecs_cluster, owners in ecs_clusters.items():
        instances = ports.ecs.container_instances(scope, ecs_cluster)
        what = f"the container instances of ECS cluster {ecs_cluster}"
        reads.append((what, owners, instances))
    for db_name, db in env.databases.items():
        cluster, instance = _database_ids(db.reader, db.cluster)
        owner = Owner(f"db {db_name}/{name}", name)
        if cluster is not None:
            ownership.add([cluster], owner)
        reads.append((f"database {db_name}", [owner], database(cluster, instance)))

    results = await asyncio.gather(*(read for _, _, read in reads), return_exceptions=True)
    problems: list[str] = []
    for (what, owners, _), result in zip(reads, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("reading %s in %s failed: %s", what, name, result)
            problems.append(f"{name}: {what} could not be read: {_reason(ctx, result)}")
            continue
        for owner in owners:
            ownership.add(result, owner)
    return problems


async def _read(ctx: Context, scope: AwsScope) -> tuple[list[Upcoming], dict[str, str]]:
    """Everything scheduled in the scope's account and region; the sources that failed."""
    upcoming = ctx.services.upcoming
    sources = {
        "EC2 scheduled events": upcoming.ec2_scheduled_events(scope),
        "RDS pending maintenance": upcoming.rds_pending_maintenance(scope),
        "AWS Health": upcoming.health_events(scope),
    }
    results = await asyncio.gather(*sources.values(), return_exceptions=True)
    items: list[Upcoming] = []
    failed: dict[str, str] = {}
    for name, result in zip(sources, results, strict=True):
        if isinstance(result, BaseException):
            explained = _reason(ctx, result)
            log.warning("reading %s in %s failed: %s", name, scope.region, explained)
            failed[name] = explained
        else:
            items.extend(result)
    return items, failed


def _when(item: Upcoming) -> str:
    return f"{item.starts:%Y-%m-%d %H:%M}" if item.starts else "not scheduled"


def _describe(item: Upcoming) -> str:
    what = re.split(r"[:(]", item.what, maxsplit=1)[0].strip()
    on = f" on {', '.join(item.entities[:3])}" if item.entities else ""
    return f"{item.source} {item.resource} {what}{on} ({_when(item)})"


@dataclass
class _Report:
    rows: list[tuple[datetime, list[str]]] = field(default_factory=list)
    unmatched: list[tuple[Place, Upcoming]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def row(self, item: Upcoming, concerns: str, resource: str) -> None:
        self.rows.append(
            (item.starts or _FAR, [_when(item), item.source, concerns, resource, item.what[:120]])
        )


def _sort_out(
    place: Place, items: list[Upcoming], ownership: Ownership, several: bool, report: _Report
) -> None:
    """Each item to the services it concerns, account-wide, or unmatched."""
    wanted = set(place.envs)
    for item in items:
        if item.source != "Health":
            owners = [o for o in ownership.of(item.resource) if o.env in wanted]
            for owner in owners:
                report.row(item, owner.label, item.resource)
            if not owners:
                report.unmatched.append((place, item))
            continue
        matched: dict[Owner, list[str]] = {}
        account_wide = not item.entities
        for entity in item.entities:
            if entity == place.account or entity in _ACCOUNT_MARKERS:
                account_wide = True
            for owner in ownership.of(entity):
                if owner.env in wanted:
                    matched.setdefault(owner, []).append(entity)
        for owner, entities in matched.items():
            shown = ", ".join(entities[:3]) + (" …" if len(entities) > 3 else "")
            report.row(item, owner.label, f"{item.resource} {shown}")
        if not matched and account_wide:
            account = f" {place.account}" if several else ""
            report.row(item, f"account-wide{account} ({', '.join(place.envs)})", item.resource)
        elif not matched:
            report.unmatched.append((place, item))


def _unmatched_note(report: _Report, env_name: str | None) -> list[str]:
    by_place: dict[tuple[str, str], list[Upcoming]] = {}
    for place, item in report.unmatched:
        by_place.setdefault((place.account, place.region), []).append(item)
    lines: list[str] = []
    for (account, region), items in by_place.items():
        where = f"account {account} {region}"
        if env_name is not None:
            lines.append(
                f"{len(items)} more in {where} concern no service of {env_name} "
                "(`events` shows them all)"
            )
            continue
        items.sort(key=lambda i: i.starts or _FAR)
        listed = "; ".join(_describe(i) for i in items[:_UNMATCHED_SHOWN])
        more = (
            f"; and {len(items) - _UNMATCHED_SHOWN} more" if len(items) > _UNMATCHED_SHOWN else ""
        )
        lines.append(f"not matched to a service: {len(items)} in {where}: {listed}{more}")
    return lines


async def events(ctx: Context) -> Message:
    config = ctx.services.config
    asked = ctx.command.optional_word("env")
    env_name = config.environment_name(asked) if asked else None
    names = [env_name] if env_name else list(config.environments)
    envs = {name: config.environment(name) for name in names}
    report = _Report()

    accounts = await asyncio.gather(
        *(ctx.services.accounts.account(env.scope) for env in envs.values()),
        return_exceptions=True,
    )
    places: dict[tuple[str, str], Place] = {}
    for (name, env), account in zip(envs.items(), accounts, strict=True):
        if isinstance(account, BaseException):
            report.problems.append(f"{name}: could not be read: {_reason(ctx, account)}")
            continue
        place = places.setdefault((account, env.region), Place(account, env.region, []))
        place.envs.append(name)
    several = len({place.account for place in places.values()}) > 1

    ownership = Ownership()
    reads = [_read(ctx, envs[place.envs[0]].scope) for place in places.values()]
    discoveries = [
        _env_resources(ctx, n, envs[n], ownership) for p in places.values() for n in p.envs
    ]
    gathered, discovered = await asyncio.gather(
        asyncio.gather(*reads), asyncio.gather(*discoveries)
    )
    for problems in discovered:
        report.problems.extend(problems)
    for place, (items, failed) in zip(places.values(), gathered, strict=True):
        report.problems.extend(
            f"{', '.join(place.envs)}: {source} could not be read: {why}"
            for source, why in failed.items()
        )
        _sort_out(place, items, ownership, several, report)

    report.rows.sort(key=lambda row: row[0])
    notes = _unmatched_note(report, env_name) + report.problems
    note = "\n".join(notes) or None
    scope = env_name or "all environments"
    if not report.rows:
        text = f"nothing scheduled by AWS for {scope}"
        return Message(text=f"{text}\n{note}" if note else text)
    return Message(
        text=f"coming up for {scope} (soonest first)",
        table=Table(
            columns=["when (UTC)", "source", "concerns", "resource", "what"],
            rows=[row for _, row in report.rows],
            note=note,
        ),
    )


SPECS = [
    CommandSpec(
        name="events",
        usage="events [ENV]",
        summary="what AWS has scheduled: EC2 events, RDS maintenance, AWS Health",
        handler=events,
        permission="events",
        args=(Arg("env", optional=True),),
        examples=("events", "events production"),
        details=(
            "Lists EC2 scheduled events (reboots, retirements), RDS pending maintenance and "
            "open or upcoming AWS Health events of the environment's services, soonest "
            "first, each with the service it concerns; the environment is read through its "
            "own account (its role). Health events about the whole account are marked "
            "account-wide. Without ENV: every environment, and what concerns no configured "
            "service is listed under the table. A source that cannot be read is named "
            "under the table; the others still show."
        ),
    )
]
