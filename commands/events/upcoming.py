"""`events [ENV]`: what AWS will do soon to an environment's resources, soonest first."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from bot.messages import Message, Table
from bot.ports.events import Upcoming
from bot.spec import Arg, CommandSpec, Context

log = logging.getLogger(__name__)


async def _gather(ctx: Context, region: str) -> tuple[list[Upcoming], list[str]]:
    upcoming = ctx.services.upcoming
    sources = {
        "EC2 scheduled events": upcoming.ec2_scheduled_events(region),
        "RDS pending maintenance": upcoming.rds_pending_maintenance(region),
        "AWS Health": upcoming.health_events(region),
    }
    results = await asyncio.gather(*sources.values(), return_exceptions=True)
    items: list[Upcoming] = []
    problems: list[str] = []
    for name, result in zip(sources, results, strict=True):
        if isinstance(result, BaseException):
            explained = ctx.services.explain_failure(result) or type(result).__name__
            log.warning("reading %s in %s failed: %s", name, region, explained)
            problems.append(f"{name} could not be read: {explained}")
        else:
            items.extend(result)
    return items, problems


async def events(ctx: Context) -> Message:
    config = ctx.services.config
    env_name = ctx.command.optional_word("env")
    names = [env_name] if env_name else list(config.environments)
    regions: dict[str, list[str]] = {}
    for name in names:
        regions.setdefault(config.environment(name).region, []).append(name)
    gathered = await asyncio.gather(*(_gather(ctx, region) for region in regions))
    far = datetime.max.replace(tzinfo=UTC)
    rows: list[tuple[datetime, list[str]]] = []
    problems: list[str] = []
    for (region, envs), (items, trouble) in zip(regions.items(), gathered, strict=True):
        problems.extend(f"{region}: {p}" for p in trouble)
        for item in items:
            starts = f"{item.starts:%Y-%m-%d %H:%M}" if item.starts else "not scheduled"
            rows.append(
                (
                    item.starts or far,
                    [starts, item.source, item.resource, item.what[:120], "/".join(envs)],
                )
            )
    rows.sort(key=lambda row: row[0])
    scope = env_name or "all environments"
    note = "\n".join(problems) or None
    if not rows:
        text = f"nothing scheduled by AWS for {scope}"
        return Message(text=f"{text}\n{note}" if note else text)
    return Message(
        text=f"coming up for {scope} (soonest first)",
        table=Table(
            columns=["when (UTC)", "source", "resource", "what", "env"],
            rows=[row for _, row in rows],
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
            "open or upcoming AWS Health events in the environment's region, soonest first. "
            "A source that cannot be read is named under the table; the others still show."
        ),
    )
]
