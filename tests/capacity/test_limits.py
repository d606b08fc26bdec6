"""`limits` and `status` of fleets and Auto Scaling groups, against the sandbox over HTTP."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Bot
from bot.model import Outcome
from tests.capacity.helpers import fleet, say

ROWS = {
    "EC2 On-Demand Standard vCPUs",
    "Elastic IPs",
    "VPCs",
    "Application Load Balancers",
    "Target groups",
    "Auto Scaling groups",
    "records in example.internal",
}


def table_rows(result: Any) -> list[list[str]]:
    table = result.messages[0].table
    assert table is not None, result.text
    rows: list[list[str]] = table.rows
    return rows


async def test_limits_lists_every_limit_with_its_usage_fullest_first(bot: Bot) -> None:
    result = await say(bot, "limits")
    assert result.outcome is Outcome.OK, result.text
    rows = table_rows(result)
    assert {row[1] for row in rows} == ROWS
    by_name = {row[1]: row for row in rows}
    # 2 x t3.medium (web) + 1 x t3.small (worker) per environment, 2 vCPUs each.
    assert by_name["EC2 On-Demand Standard vCPUs"][2:] == [
        "ap-northeast-1",
        "12",
        "64",
        "19%",
        "L-1216C47A",
    ]
    assert by_name["Elastic IPs"][3:5] == ["2", "5"]
    assert by_name["Auto Scaling groups"][3:5] == ["2", "500"]
    assert by_name["Application Load Balancers"][3:5] == ["2", "50"]
    assert by_name["Target groups"][3:5] == ["2", "3000"]
    assert by_name["records in example.internal"][2] == "Route 53"
    usage = [float(row[5].rstrip("%")) for row in rows]
    assert usage == sorted(usage, reverse=True)
    assert all(row[0] == "" for row in rows)
    assert result.text.startswith(
        "AWS limits for all environments (ap-northeast-1; account 123456789012): all below 80%"
    )


async def test_limits_flags_what_is_at_or_above_80_percent(bot: Bot, sandbox: Any) -> None:
    sandbox.set_quota("ec2", "L-1216C47A", 14)
    sandbox.set_hosted_zone_limit("example.internal.", 10)
    result = await say(bot, "limits staging")
    rows = table_rows(result)
    flagged = [row[1] for row in rows if row[0]]
    assert flagged == ["EC2 On-Demand Standard vCPUs", "records in example.internal"]
    assert rows[0][3:6] == ["12", "14", "86%"]
    assert rows[1][3:6] == ["8", "10", "80%"]
    assert result.text.startswith(
        "AWS limits for staging (ap-northeast-1; account 123456789012): 2 at or above 80%"
    )


async def test_limits_is_open_to_developers_not_analysts(bot: Bot) -> None:
    assert (await say(bot, "limits production", "local:carol")).outcome is Outcome.OK
    refused = await say(bot, "limits", "local:dave")
    assert refused.outcome is Outcome.REFUSED
    assert "lacks permission limits" in refused.text


async def test_status_of_a_fleet_lists_its_instances_with_target_health(bot: Bot) -> None:
    result = await say(bot, "status web staging")
    assert result.outcome is Outcome.OK, result.text
    message = result.messages[0]
    assert message.fields["healthy"] == "2 of 2 in web-staging-tg"
    assert message.fields["types"] == "2 t3.medium"
    assert message.table is not None
    ids = {i["InstanceId"] for i in await fleet(bot)}
    assert {row[0] for row in message.table.rows} == ids
    assert {row[4] for row in message.table.rows} == {"healthy"}


async def test_status_of_an_auto_scaling_group(bot: Bot) -> None:
    result = await say(bot, "status worker staging")
    assert result.outcome is Outcome.OK, result.text
    fields = result.messages[0].fields
    assert (fields["desired"], fields["min"], fields["max"]) == ("1", "1", "4")
    assert fields["in service"] == "1 of 1"
    assert fields["instance type"] == "t3.small"


async def test_fargate_usage_counts_the_cpu_of_running_tasks(bot: Bot) -> None:
    ports = bot.services
    # Two environments, two tasks each, 256 CPU units (a quarter vCPU) per task.
    assert await ports.quotas.fargate_vcpus_in_use("ap-northeast-1") == 1.0
