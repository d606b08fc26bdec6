"""The sandbox's SSM Run Command, target draining and instance refresh, over HTTP."""

from __future__ import annotations

from typing import Any

from sandbox import SEED, Sandbox
from tests.sandbox.test_sandbox import Aws, error_of, wait_for


def web_ids(sandbox: Sandbox) -> list[str]:
    ids: list[str] = list(sandbox.seeded["web_instance_ids/staging"])
    return ids


def invocations(aws: Aws, command_id: str) -> list[dict[str, Any]]:
    listed = aws("ssm").list_command_invocations(CommandId=command_id, Details=True)
    found: list[dict[str, Any]] = listed["CommandInvocations"]
    return found


def test_ssm_agents_are_registered_only_on_instances_with_a_profile(
    sandbox: Sandbox, aws: Aws
) -> None:
    ids = web_ids(sandbox)
    stray = aws("ec2").run_instances(
        LaunchTemplate={"LaunchTemplateName": SEED.web_launch_template("staging")},
        MinCount=1,
        MaxCount=1,
    )["Instances"][0]["InstanceId"]
    listed = aws("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [*ids, stray]}]
    )["InstanceInformationList"]
    assert {i["InstanceId"]: i["PingStatus"] for i in listed} == {i: "Online" for i in ids}
    code, message = error_of(
        aws("ssm").send_command,
        DocumentName=SEED.web_document,
        InstanceIds=[stray],
        Parameters={"version": ["v2"]},
    )
    assert code == "InvalidInstanceId" and stray in message
    aws("ec2").stop_instances(InstanceIds=[ids[0]])
    stopped = aws("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [ids[0]]}]
    )["InstanceInformationList"]
    assert stopped[0]["PingStatus"] == "ConnectionLost"


def test_run_command_takes_time_and_fails_for_broken_with_its_output(
    sandbox: Sandbox, aws: Aws
) -> None:
    ids = web_ids(sandbox)
    ssm = aws("ssm")
    good = ssm.send_command(
        DocumentName="AWS-RunShellScript",
        InstanceIds=[ids[0]],
        Parameters={"commands": ["/opt/app/deploy.sh v2"]},
    )["Command"]["CommandId"]
    bad = ssm.send_command(
        DocumentName=SEED.web_document, InstanceIds=[ids[1]], Parameters={"version": ["broken"]}
    )["Command"]["CommandId"]
    assert {i["Status"] for i in invocations(aws, good)} <= {"Pending", "InProgress"}
    wait_for(lambda: all(i["Status"] == "Success" for i in invocations(aws, good)))
    wait_for(lambda: all(i["Status"] == "Failed" for i in invocations(aws, bad)))
    failed = ssm.get_command_invocation(CommandId=bad, InstanceId=ids[1])
    assert failed["ResponseCode"] == 1
    assert (
        failed["StandardOutputContent"]
        .rstrip()
        .endswith("deploy failed: the new release does not answer its health check")
    )
    [listed] = ssm.list_commands(CommandId=bad)["Commands"]
    assert (listed["Status"], listed["ErrorCount"], listed["InstanceIds"]) == (
        "Failed",
        1,
        [ids[1]],
    )
    code, _ = error_of(
        ssm.send_command,
        DocumentName=SEED.web_document,
        InstanceIds=[ids[0]],
        Parameters={"commands": ["x"]},
    )
    assert code == "InvalidParameters"
    code, _ = error_of(ssm.send_command, DocumentName="no-such-document", InstanceIds=[ids[0]])
    assert code == "InvalidDocument"


def test_targets_drain_for_the_groups_deregistration_delay(sandbox: Sandbox, aws: Aws) -> None:
    elbv2 = aws("elbv2")
    arn = elbv2.describe_target_groups(Names=[SEED.web_target_group("staging")])["TargetGroups"][0][
        "TargetGroupArn"
    ]
    ids = web_ids(sandbox)

    def states() -> dict[str, str]:
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in health}

    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ids[0]}])
    assert states()[ids[0]] == "draining"
    wait_for(lambda: ids[0] not in states())
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}],
    )
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ids[1]}])
    assert states() == {}  # a delay of 0: gone at once


def test_instance_refresh_states_and_one_at_a_time(sandbox: Sandbox, aws: Aws) -> None:
    autoscaling = aws("autoscaling")
    group = SEED.worker_group("staging")
    started = autoscaling.start_instance_refresh(
        AutoScalingGroupName=group,
        Preferences={"CheckpointPercentages": [50], "CheckpointDelay": 3600},
    )["InstanceRefreshId"]
    [refresh] = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group)[
        "InstanceRefreshes"
    ]
    assert refresh["InstanceRefreshId"] == started
    assert refresh["Status"] == "InProgress"  # Pending until the next request
    assert refresh["Preferences"]["MinHealthyPercentage"] == 90
    code, _ = error_of(autoscaling.start_instance_refresh, AutoScalingGroupName=group)
    assert code == "InstanceRefreshInProgress"
    code, _ = error_of(
        autoscaling.start_instance_refresh,
        AutoScalingGroupName=SEED.worker_group("production"),
        Preferences={"AutoRollback": True},
    )
    assert code == "ValidationError"  # AutoRollback needs a desired configuration
    autoscaling.cancel_instance_refresh(AutoScalingGroupName=group)
    wait_for(
        lambda: (
            autoscaling.describe_instance_refreshes(AutoScalingGroupName=group)[
                "InstanceRefreshes"
            ][0]["Status"]
            == "Cancelled"
        )
    )
    code, _ = error_of(autoscaling.cancel_instance_refresh, AutoScalingGroupName=group)
    assert code == "ActiveInstanceRefreshNotFound"
