"""The sandbox over HTTP, through botocore clients, the way the bot sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox import SEED, Sandbox, SandboxTiming, demo_database_secret_id

Aws = Callable[[str], Any]

ECS_WAIT = 8.0  # seconds; a rollout at test timing takes well under one


def wait_for(check: Callable[[], Any], timeout: float = ECS_WAIT, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def error_of(call: Callable[..., Any], **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error.get("Message", "")


def describe_api(aws: Aws, env: str = "staging") -> dict[str, Any]:
    services = aws("ecs").describe_services(cluster=env, services=[SEED.ecs_service])
    service: dict[str, Any] = services["services"][0]
    return service


def register_revision(aws: Aws, tag: str, env: str = "staging") -> str:
    ecs = aws("ecs")
    current = ecs.describe_task_definition(taskDefinition=SEED.task_family(env))["taskDefinition"]
    container = dict(current["containerDefinitions"][0], image=SEED.image_uri(tag))
    keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "cpu", "memory")
    registered = ecs.register_task_definition(
        containerDefinitions=[container],
        requiresCompatibilities=["FARGATE"],
        **{key: current[key] for key in keep},
    )
    arn: str = registered["taskDefinition"]["taskDefinitionArn"]
    return arn


def deploy(aws: Aws, tag: str, env: str = "staging", **extra: Any) -> str:
    arn = register_revision(aws, tag, env)
    aws("ecs").update_service(cluster=env, service=SEED.ecs_service, taskDefinition=arn, **extra)
    return arn


def is_steady_on(service: dict[str, Any], task_definition: str) -> bool:
    deployments = service["deployments"]
    return (
        len(deployments) == 1
        and deployments[0]["rolloutState"] == "COMPLETED"
        and deployments[0]["taskDefinition"] == task_definition
        and service["runningCount"] == service["desiredCount"]
    )


def messages(service: dict[str, Any]) -> list[str]:
    return [event["message"] for event in service["events"]]


def target_states(aws: Aws, env: str = "staging") -> dict[str, str]:
    elbv2 = aws("elbv2")
    group = elbv2.describe_target_groups(Names=[SEED.web_target_group(env)])["TargetGroups"][0]
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    return {
        d["Target"]["Id"]: d["TargetHealth"]["State"] for d in health["TargetHealthDescriptions"]
    }


def instance_state(aws: Aws, instance_id: str) -> str:
    reservations = aws("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    state: str = reservations[0]["Instances"][0]["State"]["Name"]
    return state


# -- the seed ------------------------------------------------------------------------------


def test_seed_has_images_services_and_task_definitions(sandbox: Sandbox, aws: Aws) -> None:
    images = aws("ecr").describe_images(repositoryName=SEED.ecr_repository)["imageDetails"]
    tags = {tag: image["imageDigest"] for image in images for tag in image["imageTags"]}
    assert set(tags) == {"v1", "v2", "v3", "broken"}
    assert len(set(tags.values())) == 4

    for env in SEED.environments:
        service = describe_api(aws, env)
        assert service["desiredCount"] == service["runningCount"] == 2
        assert service["launchType"] == "FARGATE"
        assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
            "enable": True,
            "rollback": True,
        }
        [deployment] = service["deployments"]
        assert deployment["status"] == "PRIMARY"
        assert deployment["rolloutState"] == "COMPLETED"
        assert deployment["id"].startswith("ecs-svc/")
        assert deployment["id"][len("ecs-svc/") :].isdigit()
        assert messages(service)[0] == "(service api) has reached a steady state."

        definition = aws("ecs").describe_task_definition(taskDefinition=service["taskDefinition"])
        container = definition["taskDefinition"]["containerDefinitions"][0]
        assert definition["taskDefinition"]["family"] == f"api-{env}"
        assert container["name"] == "app"
        assert container["image"] == SEED.image_uri("v1")
        assert container["environment"] == [{"name": "APP_ENV", "value": env}]
        assert container["secrets"][0]["valueFrom"].startswith("arn:aws:ssm:ap-northeast-1:")
        assert container["portMappings"][0]["containerPort"] == 8080
        assert definition["taskDefinition"]["executionRoleArn"].startswith("arn:aws:iam::")

        task_arns = aws("ecs").list_tasks(cluster=env, serviceName="api")["taskArns"]
        tasks = aws("ecs").describe_tasks(cluster=env, tasks=task_arns)["tasks"]
        assert [t["lastStatus"] for t in tasks] == ["RUNNING", "RUNNING"]
        assert {t["startedBy"] for t in tasks} == {deployment["id"]}
        assert {t["group"] for t in tasks} == {"service:api"}


def test_seed_has_web_fleet_workers_databases_and_dns(sandbox: Sandbox, aws: Aws) -> None:
    ec2 = aws("ec2")
    for env in SEED.environments:
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": "tag:kajitori:service", "Values": ["web"]},
                {"Name": "tag:kajitori:env", "Values": [env]},
            ]
        )["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        assert len(instances) == 2
        assert {i["InstanceType"] for i in instances} == {"t3.medium"}
        assert {i["State"]["Name"] for i in instances} == {"running"}
        assert {i["Placement"]["AvailabilityZone"] for i in instances} == {
            "ap-northeast-1a",
            "ap-northeast-1c",
        }
        names = {t["Value"] for i in instances for t in i["Tags"] if t["Key"] == "Name"}
        assert names == {f"web-{env}"}
        assert set(target_states(aws, env).values()) == {"healthy"}

        group = aws("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"worker-{env}"]
        )["AutoScalingGroups"][0]
        assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 4, 1)
        assert len(group["Instances"]) == 1

        cluster = aws("rds").describe_db_clusters(DBClusterIdentifier=f"main-{env}")["DBClusters"][
            0
        ]
        assert cluster["Engine"] == "aurora-mysql"
        assert cluster["DatabaseName"] == "app"
        assert cluster["ReaderEndpoint"].startswith(f"main-{env}.cluster-ro-")
        writers = {
            m["DBInstanceIdentifier"]: m["IsClusterWriter"] for m in cluster["DBClusterMembers"]
        }
        assert writers == {f"main-{env}-1": True, f"main-{env}-2": False}
        secret = aws("secretsmanager").get_secret_value(SecretId=demo_database_secret_id(env))
        assert json.loads(secret["SecretString"]) == {
            "username": f"admin_{env}",
            "password": SEED.db_password(env),
            "host": "127.0.0.1",
            "port": 3306,
        }

    zones = aws("route53").list_hosted_zones_by_name(DNSName="example.internal.")["HostedZones"]
    assert zones[0]["Name"] == "example.internal."
    assert zones[0]["Config"]["PrivateZone"] is True
    quotas = aws("service-quotas")
    vcpus = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")["Quota"]
    assert vcpus["Value"] == 64.0


# -- ECS rolling deployments ---------------------------------------------------------------


def test_healthy_rollout_replaces_tasks_and_completes(sandbox: Sandbox, aws: Aws) -> None:
    before = describe_api(aws)
    old_id = before["deployments"][0]["id"]
    v2 = deploy(aws, "v2")

    started = describe_api(aws)
    primary, active = started["deployments"]
    assert (primary["status"], primary["rolloutState"]) == ("PRIMARY", "IN_PROGRESS")
    assert primary["rolloutStateReason"] == f"ECS deployment {primary['id']} in progress."
    assert primary["runningCount"] == 0
    assert primary["taskDefinition"] == v2
    assert (active["id"], active["status"], active["runningCount"]) == (old_id, "ACTIVE", 2)
    assert started["taskDefinition"] == v2

    done = wait_for(lambda: (s := describe_api(aws)) and is_steady_on(s, v2) and s)
    [deployment] = done["deployments"]
    assert deployment["id"] == primary["id"]
    assert deployment["rolloutStateReason"] == f"ECS deployment {primary['id']} completed."
    assert deployment["failedTasks"] == 0

    events = messages(done)
    assert events[0] == "(service api) has reached a steady state."
    assert events[1] == f"(service api) (deployment {primary['id']}) deployment completed."
    assert events[2].startswith("(service api) has stopped 2 running tasks: (task ")
    assert events[3].startswith("(service api) has started 2 tasks: (task ")
    times = [event["createdAt"] for event in done["events"]]
    assert times == sorted(times, reverse=True)

    ecs = aws("ecs")
    stopped = ecs.list_tasks(cluster="staging", serviceName="api", desiredStatus="STOPPED")
    old_tasks = ecs.describe_tasks(cluster="staging", tasks=stopped["taskArns"])["tasks"]
    assert {t["startedBy"] for t in old_tasks} == {old_id}
    assert {t["stopCode"] for t in old_tasks} == {"ServiceSchedulerInitiated"}
    running = ecs.list_tasks(cluster="staging", serviceName="api")["taskArns"]
    new_tasks = ecs.describe_tasks(cluster="staging", tasks=running)["tasks"]
    assert {t["startedBy"] for t in new_tasks} == {primary["id"]}
    assert {t["containers"][0]["image"] for t in new_tasks} == {SEED.image_uri("v2")}


def test_broken_rollout_trips_circuit_breaker_and_rolls_back(sandbox: Sandbox, aws: Aws) -> None:
    v1 = describe_api(aws)["taskDefinition"]
    completed_id = describe_api(aws)["deployments"][0]["id"]
    broken = deploy(aws, "broken")
    broken_id = describe_api(aws)["deployments"][0]["id"]

    def rolling_back() -> dict[str, Any] | None:
        service = describe_api(aws)
        failed = [d for d in service["deployments"] if d["id"] == broken_id]
        return service if failed and failed[0]["rolloutState"] == "FAILED" else None

    service = wait_for(rolling_back)
    failed = next(d for d in service["deployments"] if d["id"] == broken_id)
    assert failed["status"] == "ACTIVE"
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["failedTasks"] >= 3
    rollback = service["deployments"][0]
    assert rollback["status"] == "PRIMARY"
    assert rollback["taskDefinition"] == v1
    assert rollback["rolloutStateReason"] == (
        f"ECS deployment circuit breaker: rolling back to deploymentId {completed_id}."
    )
    assert service["taskDefinition"] == v1

    done = wait_for(lambda: (s := describe_api(aws)) and is_steady_on(s, v1) and s)
    assert done["deployments"][0]["id"] == rollback["id"]
    events = messages(done)
    failed_at = events.index(
        f"(service api) (deployment {broken_id}) deployment failed: tasks failed to start."
    )
    assert events[failed_at - 1] == f"(service api) rolling back to deployment {completed_id}."

    ecs = aws("ecs")
    stopped = ecs.list_tasks(cluster="staging", startedBy=broken_id, desiredStatus="STOPPED")
    tasks = ecs.describe_tasks(cluster="staging", tasks=stopped["taskArns"])["tasks"]
    assert len(tasks) >= 3
    assert all(t["taskDefinitionArn"] == broken for t in tasks)
    assert {t["stopCode"] for t in tasks} == {"EssentialContainerExited"}
    assert {t["stoppedReason"] for t in tasks} == {"Essential container in task exited"}
    assert "startedAt" not in tasks[0]


def test_broken_rollout_without_rollback_stays_failed(sandbox: Sandbox, aws: Aws) -> None:
    old = describe_api(aws)["deployments"][0]
    deploy(
        aws,
        "broken",
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
    )
    service = wait_for(
        lambda: (s := describe_api(aws))["deployments"][0]["rolloutState"] == "FAILED" and s
    )
    time.sleep(4 * SandboxTiming.fast().ecs_task_step)
    service = describe_api(aws)
    primary, active = service["deployments"]
    assert (primary["status"], primary["rolloutState"]) == ("PRIMARY", "FAILED")
    assert primary["runningCount"] == 0
    assert (active["id"], active["runningCount"]) == (old["id"], 2)
    assert service["runningCount"] == 2


def test_desired_count_change_scales_without_new_deployment(sandbox: Sandbox, aws: Aws) -> None:
    deployment_id = describe_api(aws)["deployments"][0]["id"]
    aws("ecs").update_service(cluster="staging", service="api", desiredCount=4)
    service = wait_for(lambda: (s := describe_api(aws))["runningCount"] == 4 and s)
    assert [d["id"] for d in service["deployments"]] == [deployment_id]
    assert service["deployments"][0]["desiredCount"] == 4
    assert service["deployments"][0]["rolloutState"] == "COMPLETED"

    aws("ecs").update_service(cluster="staging", service="api", desiredCount=1)
    service = wait_for(
        lambda: (
            (s := describe_api(aws))["runningCount"] == 1
            and messages(s)[0].endswith("has reached a steady state.")
            and s
        )
    )
    assert [d["id"] for d in service["deployments"]] == [deployment_id]
    assert len(aws("ecs").list_tasks(cluster="staging", serviceName="api")["taskArns"]) == 1


def test_services_stable_waiter_and_force_new_deployment(sandbox: Sandbox, aws: Aws) -> None:
    before = describe_api(aws)
    aws("ecs").update_service(cluster="staging", service="api", forceNewDeployment=True)
    assert len(describe_api(aws)["deployments"]) == 2
    aws("ecs").get_waiter("services_stable").wait(
        cluster="staging", services=["api"], WaiterConfig={"Delay": 1, "MaxAttempts": 10}
    )
    after = describe_api(aws)
    assert after["deployments"][0]["id"] != before["deployments"][0]["id"]
    assert after["taskDefinition"] == before["taskDefinition"]


def test_rollout_at_default_timing_is_in_progress_then_completes(
    sandbox: Sandbox, aws: Aws
) -> None:
    sandbox.set_timing(SandboxTiming())
    v2 = deploy(aws, "v2", env="production")
    primary = describe_api(aws, "production")["deployments"][0]
    assert primary["rolloutState"] == "IN_PROGRESS"
    assert primary["runningCount"] == 0
    wait_for(lambda: is_steady_on(describe_api(aws, "production"), v2), timeout=30, interval=0.25)


# -- Service Quotas ------------------------------------------------------------------------


def test_service_quotas_applied_default_and_missing(sandbox: Sandbox, aws: Aws) -> None:
    quotas = aws("service-quotas")
    vcpus = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")["Quota"]
    assert vcpus["QuotaArn"] == "arn:aws:servicequotas:ap-northeast-1:123456789012:ec2/L-1216C47A"
    assert vcpus["UsageMetric"]["MetricNamespace"] == "AWS/Usage"
    assert vcpus["UsageMetric"]["MetricDimensions"]["Resource"] == "vCPU"

    code, _ = error_of(quotas.get_service_quota, ServiceCode="vpc", QuotaCode="L-F678F1CE")
    assert code == "NoSuchResourceException"
    vpcs = quotas.get_aws_default_service_quota(ServiceCode="vpc", QuotaCode="L-F678F1CE")["Quota"]
    assert (vpcs["Value"], vpcs["QuotaArn"]) == (
        5.0,
        "arn:aws:servicequotas:ap-northeast-1::vpc/L-F678F1CE",
    )
    default_vcpus = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")
    assert default_vcpus["Quota"]["Value"] == 5.0

    applied = quotas.list_service_quotas(ServiceCode="ec2")["Quotas"]
    assert {q["QuotaCode"]: q["Value"] for q in applied} == {"L-1216C47A": 64.0, "L-0263D0A3": 5.0}
    assert quotas.list_service_quotas(ServiceCode="elasticloadbalancing")["Quotas"] == []
    defaults = quotas.list_aws_default_service_quotas(ServiceCode="elasticloadbalancing")
    assert {q["QuotaCode"]: q["Value"] for q in defaults["Quotas"]} == {
        "L-53DA6B97": 50.0,
        "L-B22855CB": 3000.0,
    }
    asg = quotas.get_aws_default_service_quota(ServiceCode="autoscaling", QuotaCode="L-CDE20ADC")
    assert asg["Quota"]["Value"] == 500.0
    code, message = error_of(quotas.list_service_quotas, ServiceCode="EC2")
    assert (code, message) == (
        "NoSuchResourceException",
        "The request failed because the specified service does not exist.",
    )


def test_quota_increase_request_applies_the_new_value(sandbox: Sandbox, aws: Aws) -> None:
    quotas = aws("service-quotas")
    request = quotas.request_service_quota_increase(
        ServiceCode="elasticloadbalancing", QuotaCode="L-53DA6B97", DesiredValue=60
    )["RequestedQuota"]
    assert request["Status"] == "APPROVED"
    quota = quotas.get_service_quota(ServiceCode="elasticloadbalancing", QuotaCode="L-53DA6B97")
    assert quota["Quota"]["Value"] == 60.0
    limits = aws("elbv2").describe_account_limits()["Limits"]
    assert {limit["Name"]: limit["Max"] for limit in limits}["application-load-balancers"] == "60"


def test_run_instances_enforces_the_vcpu_quota(sandbox: Sandbox, aws: Aws) -> None:
    ec2 = aws("ec2")
    image_id = sandbox.seeded["image_id"]
    # In use: 4 x t3.medium (web) and 2 x t3.small (workers), 2 vCPUs each.
    sandbox.set_quota("ec2", "L-1216C47A", 16)
    launched = ec2.run_instances(ImageId=image_id, InstanceType="m5.large", MinCount=2, MaxCount=2)
    assert {i["State"]["Name"] for i in launched["Instances"]} == {"pending"}

    code, message = error_of(
        ec2.run_instances, ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1
    )
    assert code == "VcpuLimitExceeded"
    assert "current vCPU limit of 16 allows" in message

    # Other buckets and stopped instances do not count.
    ec2.run_instances(ImageId=image_id, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)
    ec2.stop_instances(InstanceIds=[launched["Instances"][0]["InstanceId"]])
    ec2.run_instances(ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1)

    code, message = error_of(
        ec2.run_instances, ImageId=image_id, InstanceType="t9.huge", MinCount=1, MaxCount=1
    )
    assert (code, message) == ("InvalidParameterValue", "Invalid value 't9.huge' for InstanceType.")


def test_allocate_address_enforces_the_elastic_ip_quota(sandbox: Sandbox, aws: Aws) -> None:
    ec2 = aws("ec2")
    assert len(ec2.describe_addresses()["Addresses"]) == 2
    for _ in range(3):
        ec2.allocate_address(Domain="vpc")
    code, _ = error_of(ec2.allocate_address, Domain="vpc")
    assert code == "AddressLimitExceeded"


# -- Route 53, ELBv2 and Auto Scaling limits -----------------------------------------------


def test_route53_hosted_zone_and_account_limits(sandbox: Sandbox, aws: Aws) -> None:
    route53 = aws("route53")
    zone_id = route53.list_hosted_zones_by_name(DNSName="example.internal.")["HostedZones"][0]["Id"]
    records = route53.get_hosted_zone_limit(HostedZoneId=zone_id, Type="MAX_RRSETS_BY_ZONE")
    assert records["Limit"] == {"Type": "MAX_RRSETS_BY_ZONE", "Value": 10000}
    assert records["Count"] == 8  # SOA, NS and web/db/db-ro per environment
    vpcs = route53.get_hosted_zone_limit(HostedZoneId=zone_id, Type="MAX_VPCS_ASSOCIATED_BY_ZONE")
    assert (vpcs["Limit"]["Value"], vpcs["Count"]) == (300, 1)
    zones = route53.get_account_limit(Type="MAX_HOSTED_ZONES_BY_OWNER")
    assert (zones["Limit"]["Value"], zones["Count"]) == (500, 1)

    sandbox.set_hosted_zone_limit("example.internal.", 9)
    assert (
        route53.get_hosted_zone_limit(HostedZoneId=zone_id, Type="MAX_RRSETS_BY_ZONE")["Limit"][
            "Value"
        ]
        == 9
    )

    def record(name: str) -> dict[str, Any]:
        return {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"{name}.example.internal.",
                "Type": "A",
                "TTL": 60,
                "ResourceRecords": [{"Value": "10.0.1.10"}],
            },
        }

    code, _ = error_of(
        route53.change_resource_record_sets,
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [record("a"), record("b")]},
    )
    assert code == "InvalidChangeBatch"
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [record("a")]}
    )

    public = route53.create_hosted_zone(Name="example.com.", CallerReference="public")
    code, _ = error_of(
        route53.get_hosted_zone_limit,
        HostedZoneId=public["HostedZone"]["Id"],
        Type="MAX_VPCS_ASSOCIATED_BY_ZONE",
    )
    assert code == "HostedZoneNotPrivate"


def test_elbv2_and_auto_scaling_account_limits(sandbox: Sandbox, aws: Aws) -> None:
    limits = {
        limit["Name"]: limit["Max"] for limit in aws("elbv2").describe_account_limits()["Limits"]
    }
    assert limits["application-load-balancers"] == "50"
    assert limits["target-groups"] == "3000"
    assert limits["targets-per-application-load-balancer"] == "1000"
    assert limits["listeners-per-application-load-balancer"] == "50"
    assert limits["rules-per-application-load-balancer"] == "100"

    asg = aws("autoscaling").describe_account_limits()
    assert asg["MaxNumberOfAutoScalingGroups"] == 500
    assert asg["MaxNumberOfLaunchConfigurations"] == 200
    assert asg["NumberOfAutoScalingGroups"] == 2


# -- ELBv2 target health -------------------------------------------------------------------


def test_target_health_goes_through_draining_and_initial(sandbox: Sandbox, aws: Aws) -> None:
    elbv2 = aws("elbv2")
    group_arn = elbv2.describe_target_groups(Names=["web-staging-tg"])["TargetGroups"][0][
        "TargetGroupArn"
    ]
    first, second = sandbox.seeded["web_instance_ids/staging"]

    elbv2.deregister_targets(TargetGroupArn=group_arn, Targets=[{"Id": second}])
    health = elbv2.describe_target_health(TargetGroupArn=group_arn)["TargetHealthDescriptions"]
    draining = next(d for d in health if d["Target"]["Id"] == second)["TargetHealth"]
    assert draining["State"] == "draining"
    assert draining["Reason"] == "Target.DeregistrationInProgress"
    wait_for(lambda: target_states(aws) == {first: "healthy"})
    explicit = elbv2.describe_target_health(TargetGroupArn=group_arn, Targets=[{"Id": second}])
    assert explicit["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "unused"

    elbv2.register_targets(TargetGroupArn=group_arn, Targets=[{"Id": second, "Port": 8080}])
    health = elbv2.describe_target_health(TargetGroupArn=group_arn)["TargetHealthDescriptions"]
    initial = next(d for d in health if d["Target"]["Id"] == second)["TargetHealth"]
    assert (initial["State"], initial["Reason"]) == ("initial", "Elb.InitialHealthChecking")
    wait_for(lambda: target_states(aws) == {first: "healthy", second: "healthy"})

    # Deregistering a target that was never registered succeeds, as on AWS.
    elbv2.deregister_targets(TargetGroupArn=group_arn, Targets=[{"Id": "i-0123456789abcdef0"}])


def test_stopped_instance_target_is_unused_and_cannot_register(sandbox: Sandbox, aws: Aws) -> None:
    ec2, elbv2 = aws("ec2"), aws("elbv2")
    group_arn = elbv2.describe_target_groups(Names=["web-staging-tg"])["TargetGroups"][0][
        "TargetGroupArn"
    ]
    first = sandbox.seeded["web_instance_ids/staging"][0]
    ec2.stop_instances(InstanceIds=[first])
    wait_for(lambda: instance_state(aws, first) == "stopped")
    assert target_states(aws)[first] == "unused"

    elbv2.deregister_targets(TargetGroupArn=group_arn, Targets=[{"Id": first}])
    wait_for(lambda: first not in target_states(aws))
    code, _ = error_of(elbv2.register_targets, TargetGroupArn=group_arn, Targets=[{"Id": first}])
    assert code == "InvalidTarget"


# -- EC2 instance type changes -------------------------------------------------------------


def test_instance_type_change_needs_a_stopped_instance(sandbox: Sandbox, aws: Aws) -> None:
    ec2 = aws("ec2")
    instance_id = sandbox.seeded["web_instance_ids/staging"][0]
    code, message = error_of(
        ec2.modify_instance_attribute, InstanceId=instance_id, InstanceType={"Value": "t3.large"}
    )
    assert (code, message) == (
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in the 'stopped' state.",
    )

    stopping = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert stopping["CurrentState"]["Name"] == "stopping"
    assert instance_state(aws, instance_id) == "stopping"
    wait_for(lambda: instance_state(aws, instance_id) == "stopped")

    code, _ = error_of(
        ec2.modify_instance_attribute, InstanceId=instance_id, InstanceType={"Value": "t9.huge"}
    )
    assert code == "InvalidInstanceAttributeValue"
    code, _ = error_of(
        ec2.modify_instance_attribute, InstanceId=instance_id, InstanceType={"Value": "t4g.large"}
    )
    assert code == "InvalidInstanceAttributeValue"
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.large"})

    ec2.start_instances(InstanceIds=[instance_id])
    assert instance_state(aws, instance_id) == "pending"
    wait_for(lambda: instance_state(aws, instance_id) == "running")
    wait_for(lambda: target_states(aws)[instance_id] == "healthy")
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    assert described["Instances"][0]["InstanceType"] == "t3.large"


def test_describe_instance_types(sandbox: Sandbox, aws: Aws) -> None:
    ec2 = aws("ec2")
    [info] = ec2.describe_instance_types(InstanceTypes=["t3.medium"])["InstanceTypes"]
    assert info["VCpuInfo"]["DefaultVCpus"] == 2
    assert info["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    code, message = error_of(ec2.describe_instance_types, InstanceTypes=["t9.huge"])
    assert (code, message) == (
        "InvalidInstanceType",
        "The following supplied instance types do not exist: [t9.huge]",
    )


# -- RDS instance class changes ------------------------------------------------------------


def test_rds_instance_class_change_waits_or_applies(sandbox: Sandbox, aws: Aws) -> None:
    rds = aws("rds")

    def reader() -> dict[str, Any]:
        instance: dict[str, Any] = rds.describe_db_instances(DBInstanceIdentifier="main-staging-2")[
            "DBInstances"
        ][0]
        return instance

    rds.modify_db_instance(
        DBInstanceIdentifier="main-staging-2",
        DBInstanceClass="db.r6g.xlarge",
        ApplyImmediately=False,
    )
    deferred = reader()
    assert deferred["DBInstanceClass"] == "db.r6g.large"
    assert deferred["DBInstanceStatus"] == "available"
    assert deferred["PendingModifiedValues"] == {"DBInstanceClass": "db.r6g.xlarge"}

    rds.modify_db_instance(
        DBInstanceIdentifier="main-staging-2",
        DBInstanceClass="db.r6g.2xlarge",
        ApplyImmediately=True,
    )
    assert reader()["DBInstanceStatus"] == "modifying"
    done = wait_for(lambda: (r := reader())["DBInstanceStatus"] == "available" and r)
    assert done["DBInstanceClass"] == "db.r6g.2xlarge"
    assert not done.get("PendingModifiedValues")


# -- reset ---------------------------------------------------------------------------------


def test_reset_restores_the_seed(sandbox: Sandbox, aws: Aws) -> None:
    deploy(aws, "v3")
    aws("ec2").allocate_address(Domain="vpc")
    sandbox.reset()
    service = describe_api(aws)
    assert service["taskDefinition"].endswith(":1")
    assert len(service["deployments"]) == 1
    assert len(aws("ec2").describe_addresses()["Addresses"]) == 2
