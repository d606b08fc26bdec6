"""What AWS schedules, as the sandbox answers it: EC2 instance events only with
IncludeAllInstances or on running instances, RDS pending maintenance filtered by instance
or cluster, AWS Health events filtered, paged and with a status that follows the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox

Aws = Callable[[str], Any]
ARN = "arn:aws:rds:ap-northeast-1:123456789012"


def test_a_stopped_instances_event_is_listed_only_with_include_all_instances(
    sandbox: Sandbox, aws: Aws
) -> None:
    ec2 = aws("ec2")
    web = sandbox.seeded["web_instance_ids/staging"][-1]
    ec2.stop_instances(InstanceIds=[web])
    start = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    event_id = sandbox.schedule_instance_event(web, "instance-stop", start)

    running_only = ec2.describe_instance_status(InstanceIds=[web])["InstanceStatuses"]
    assert running_only == []
    (status,) = ec2.describe_instance_status(InstanceIds=[web], IncludeAllInstances=True)[
        "InstanceStatuses"
    ]
    assert status["Events"] == [
        {
            "InstanceEventId": event_id,
            "Code": "instance-stop",
            "Description": "The instance is scheduled to be stopped",
            "NotBefore": start,
        }
    ]


def test_an_unknown_event_code_is_refused_with_the_valid_ones(sandbox: Sandbox) -> None:
    web = sandbox.seeded["web_instance_ids/staging"][0]
    with pytest.raises(ValueError, match="instance-retirement"):
        sandbox.schedule_instance_event(web, "reboot", datetime.now(UTC))


def test_pending_maintenance_is_filtered_by_instance_cluster_and_resource(
    sandbox: Sandbox, aws: Aws
) -> None:
    rds = aws("rds")
    forced = datetime(2030, 5, 6, 7, 0, tzinfo=UTC)
    sandbox.schedule_db_maintenance(
        f"{ARN}:db:main-production-1", "os-upgrade", forced_apply=forced
    )

    def resources(**kwargs: Any) -> list[str]:
        found = rds.describe_pending_maintenance_actions(**kwargs)["PendingMaintenanceActions"]
        return [r["ResourceIdentifier"] for r in found]

    assert resources() == [f"{ARN}:db:main-production-1", f"{ARN}:cluster:main-staging"]
    instance_filter = [{"Name": "db-instance-id", "Values": ["main-production-1"]}]
    assert resources(Filters=instance_filter) == [f"{ARN}:db:main-production-1"]
    cluster_filter = [{"Name": "db-cluster-id", "Values": [f"{ARN}:cluster:main-staging"]}]
    assert resources(Filters=cluster_filter) == [f"{ARN}:cluster:main-staging"]
    assert resources(ResourceIdentifier=f"{ARN}:db:main-staging-1") == []
    (found,) = rds.describe_pending_maintenance_actions(
        ResourceIdentifier=f"{ARN}:db:main-production-1"
    )["PendingMaintenanceActions"]
    assert found["PendingMaintenanceActionDetails"] == [
        {"Action": "os-upgrade", "ForcedApplyDate": forced, "CurrentApplyDate": forced}
    ]


def test_maintenance_on_a_database_that_does_not_exist_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="no DB instance or cluster"):
        sandbox.schedule_db_maintenance(f"{ARN}:db:nope", "db-upgrade")


def test_health_events_are_filtered_paged_and_their_status_follows_the_clock(
    sandbox: Sandbox, aws: Aws
) -> None:
    health = aws("health")
    now = datetime.now(UTC)
    ended = sandbox.add_health_event(
        "EC2",
        "AWS_EC2_OPERATIONAL_ISSUE",
        now - timedelta(days=2),
        now - timedelta(days=1),
        category="issue",
    )
    ongoing = sandbox.add_health_event(
        "EC2", "AWS_EC2_OPERATIONAL_ISSUE", now - timedelta(hours=1), category="issue"
    )
    elsewhere = sandbox.add_health_event(
        "RDS", "AWS_RDS_MAINTENANCE_SCHEDULED", now + timedelta(days=1), region="us-west-2"
    )

    def arns(**kwargs: Any) -> dict[str, str]:
        return {e["arn"]: e["statusCode"] for e in health.describe_events(**kwargs)["events"]}

    seeded = {
        a
        for a, status in arns(
            filter={"services": ["EC2"], "eventStatusCodes": ["upcoming"]}
        ).items()
    }
    assert len(seeded) == 2  # the demo seed's retirement and account notice
    assert arns(filter={"regions": ["ap-northeast-1"], "eventTypeCategories": ["issue"]}) == {
        ended: "closed",
        ongoing: "open",
    }
    assert arns(filter={"regions": ["us-west-2"]}) == {elsewhere: "upcoming"}
    first = health.describe_events(maxResults=3)
    assert len(first["events"]) == 3
    rest = health.describe_events(maxResults=3, nextToken=first["nextToken"])
    assert "nextToken" not in rest
    everything = {e["arn"] for e in first["events"] + rest["events"]}
    assert everything == {ended, ongoing, elsewhere} | seeded


def test_health_events_belong_to_their_account_and_list_their_affected_entities(
    sandbox: Sandbox, aws: Aws
) -> None:
    health = aws("health")
    start = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    web = sandbox.seeded["web_instance_ids/staging"][0]
    mine = sandbox.add_health_event(
        "EC2", "AWS_EC2_SYSTEM_MAINTENANCE_EVENT", start, entities=(web,)
    )
    whole = sandbox.add_health_event("IAM", "AWS_IAM_NOTICE", start, category="accountNotification")
    theirs = sandbox.add_health_event(
        "EC2", "AWS_EC2_SYSTEM_MAINTENANCE_EVENT", start, account_id="210987654321"
    )
    public = sandbox.add_health_event("EC2", "AWS_EC2_OPERATIONAL_ISSUE", start, public=True)

    seen = {e["arn"]: e["eventScopeCode"] for e in health.describe_events(maxResults=100)["events"]}
    assert seen[mine] == seen[whole] == "ACCOUNT_SPECIFIC"
    assert seen[public] == "PUBLIC"
    assert theirs not in seen  # another account's

    found = health.describe_affected_entities(filter={"eventArns": [mine, whole, theirs, public]})
    entities = {(e["eventArn"], e["entityValue"]) for e in found["entities"]}
    # An event without resources affects the account itself; public ones list none.
    assert entities == {(mine, web), (whole, "123456789012")}
    assert {e["awsAccountId"] for e in found["entities"]} == {"123456789012"}
    with pytest.raises(ClientError, match="1 to 10"):
        health.describe_affected_entities(filter={"eventArns": [mine] * 11})


def test_health_calls_the_sandbox_does_not_answer_are_refused(aws: Aws) -> None:
    with pytest.raises(ClientError, match="answers DescribeEvents"):
        aws("health").describe_event_details(eventArns=["arn:aws:health:x::event/EC2/A/A_1"])
