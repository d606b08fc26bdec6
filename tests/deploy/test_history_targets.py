"""Which version a rollback goes to, from the deploy history alone."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.model import DeployRecord
from bot.ports.ecs import EcsServiceState
from commands.deploy.workflow import (
    named_version,
    previous_version,
    recorded_versions,
    successful_versions,
)

ARN = "arn:aws:ecs:ap-northeast-1:123456789012:task-definition/api-staging:"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(
    n: int, version: str, revision: int, outcome: str = "succeeded", kind: str = "deploy"
) -> DeployRecord:
    return DeployRecord(
        id=n,
        service="api",
        env="staging",
        version=version,
        task_definition=f"{ARN}{revision}",
        previous_version="v1",
        previous_task_definition=f"{ARN}1",
        triggered_by="local:alice",
        kind=kind,
        started_at=NOW,
        outcome=outcome,
    )


def running(version: str, revision: int) -> EcsServiceState:
    return EcsServiceState(
        cluster="staging",
        service="api",
        status="ACTIVE",
        desired=2,
        running=2,
        pending=0,
        task_definition=f"{ARN}{revision}",
        image=f"123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/api:{version}",
    )


def test_previous_version_skips_failed_and_rolled_back_deploys() -> None:
    records = [
        record(1, "v2", 2),
        record(2, "broken", 3, outcome="rolled_back"),
        record(3, "v3", 4, outcome="failed"),
        record(4, "v4", 5),
    ]
    target = previous_version(records, running("v4", 5))
    assert target is not None
    assert (target.version, target.task_definition) == ("v2", f"{ARN}2")


def test_first_deploy_remembers_what_ran_before_it() -> None:
    target = previous_version([record(1, "v2", 2)], running("v2", 2))
    assert target is not None
    assert (target.version, target.task_definition, target.source) == (
        "v1",
        f"{ARN}1",
        "as it ran before deploy 1",
    )


def test_rollbacks_walk_back_instead_of_forward() -> None:
    records = [record(1, "v2", 2), record(2, "v3", 3), record(3, "v2", 2, kind="rollback")]
    assert [k.version for k in successful_versions(records)] == ["v1", "v2"]
    target = previous_version(records, running("v2", 2))
    assert target is not None and target.version == "v1"


def test_redeploying_the_running_version_does_not_count_as_a_step() -> None:
    records = [record(1, "v2", 2), record(2, "v2", 3)]
    target = previous_version(records, running("v2", 3))
    assert target is not None and target.version == "v1"


def test_a_change_made_outside_kajitori_rolls_back_to_the_last_recorded_success() -> None:
    target = previous_version([record(1, "v2", 2)], running("v7", 9))
    assert target is not None and target.version == "v2"


def test_named_version_takes_the_newest_successful_revision() -> None:
    records = [record(1, "v2", 2), record(2, "v2", 4), record(3, "v3", 5, outcome="failed")]
    found = named_version(records, "v2")
    assert found is not None and found.task_definition == f"{ARN}4"
    assert named_version(records, "v3") is None
    before = named_version(records, "v1")
    assert before is not None and before.task_definition == f"{ARN}1"


def test_versions_a_rollback_went_back_past_are_still_recorded() -> None:
    # v1 ran, v2 deployed, rolled back to v1, then v3 deployed: v2 ran successfully too.
    records = [
        record(1, "v2", 2),
        record(2, "v1", 1, kind="rollback"),
        record(3, "v3", 3),
    ]
    assert [k.version for k in successful_versions(records)] == ["v1", "v3"]
    assert recorded_versions(records) == ["v1", "v2", "v3"]
