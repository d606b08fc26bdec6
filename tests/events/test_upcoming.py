"""`events [ENV]`: what AWS has scheduled in the environment's region, soonest first. The
sandbox answers the three sources in AWS's documented shapes (EC2 DescribeInstanceStatus
`Events`, RDS DescribePendingMaintenanceActions, AWS Health DescribeEvents), and its demo
seed schedules one of each on staging's resources."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import parse_config
from bot.model import Origin, Outcome
from tests.events.conftest import BotMaker, client, events_data

ALICE = Origin(adapter="local", channel="local", member="local:alice")
ARN = "arn:aws:rds:ap-northeast-1:123456789012"


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def _rows(text: str) -> list[list[str]]:
    """The table's rows: when, source, resource, what, env."""
    return [
        re.split(r"\s{2,}", line.strip())
        for line in text.splitlines()
        if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d  ", line)
    ]


async def test_events_lists_the_seeded_ec2_rds_and_health_events_soonest_first(
    sandbox: Any, make_bot: BotMaker
) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(ALICE, "events staging")
    assert result.outcome is Outcome.OK
    assert "coming up for staging (soonest first)" in result.text
    assert "could not be read" not in result.text
    scheduled = sandbox.seeded["scheduled"]
    instance, reboot = scheduled["ec2"]
    cluster, update = scheduled["rds"]
    _, retirement = scheduled["health"]
    assert _rows(result.text) == [
        [
            _when(reboot),
            "EC2",
            instance,
            "system-reboot: The system is scheduled for a reboot",
            "staging",
        ],
        [
            _when(update),
            "RDS",
            cluster,
            "system-update: New Operating System update is available",
            "staging",
        ],
        [
            _when(retirement),
            "Health",
            "EC2",
            "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED (scheduledChange)",
            "staging",
        ],
    ]


async def test_events_orders_what_was_scheduled_by_start_and_leaves_out_ended_health_events(
    sandbox: Any, make_bot: BotMaker
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    web = sandbox.seeded["web_instance_ids/staging"][-1]
    sandbox.schedule_instance_event(
        web, "instance-retirement", now + timedelta(hours=30), description="degraded host"
    )
    sandbox.schedule_db_maintenance(
        f"{ARN}:db:main-staging-2", "db-upgrade", forced_apply=now + timedelta(hours=5)
    )
    sandbox.add_health_event(
        "RDS", "AWS_RDS_OPERATIONAL_ISSUE", now - timedelta(hours=1), category="issue"
    )
    sandbox.add_health_event(
        "ECS", "AWS_ECS_OPERATIONAL_ISSUE", now - timedelta(days=2), now - timedelta(days=1)
    )
    bot = await make_bot()
    result = await bot.dispatcher.handle(ALICE, "events staging")
    rows = _rows(result.text)
    assert [row[:4] for row in rows[:3]] == [
        [_when(now - timedelta(hours=1)), "Health", "RDS", "AWS_RDS_OPERATIONAL_ISSUE (issue)"],
        [_when(now + timedelta(hours=5)), "RDS", "main-staging-2", "db-upgrade"],
        [_when(now + timedelta(hours=30)), "EC2", web, "instance-retirement: degraded host"],
    ]
    assert len(rows) == 6  # and the three the seed scheduled
    assert "AWS_ECS_OPERATIONAL_ISSUE" not in result.text  # closed: it ended yesterday


async def test_another_environments_events_are_not_listed(sandbox: Any, make_bot: BotMaker) -> None:
    data = events_data()
    data["environments"]["production"]["region"] = "us-west-2"
    ec2 = client(sandbox, "ec2", "us-west-2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    soon = datetime.now(UTC) + timedelta(hours=3)
    sandbox.schedule_instance_event(
        instance["InstanceId"], "system-maintenance", soon, region="us-west-2"
    )
    sandbox.add_health_event("EC2", "AWS_EC2_MAINTENANCE_SCHEDULED", soon, region="us-west-2")
    bot = await make_bot(parse_config(data))

    staging = await bot.dispatcher.handle(ALICE, "events staging")
    assert [row[2] for row in _rows(staging.text)] == [
        sandbox.seeded["scheduled"]["ec2"][0],
        "main-staging",
        "EC2",
    ]
    assert "system-maintenance" not in staging.text
    assert "AWS_EC2_MAINTENANCE_SCHEDULED" not in staging.text

    production = await bot.dispatcher.handle(ALICE, "events production")
    assert [row[1:3] + row[4:] for row in _rows(production.text)] == [
        ["EC2", instance["InstanceId"], "production"],
        ["Health", "EC2", "production"],
    ]
    assert "system-reboot" not in production.text


async def test_events_needs_the_events_permission(sandbox: Any, make_bot: BotMaker) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(
        Origin(adapter="local", channel="local", member="local:dave"), "events"
    )
    assert result.outcome is Outcome.REFUSED
