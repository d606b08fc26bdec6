"""The capacity ports on aiobotocore: ECS desired counts, EC2 fleets and their target groups,
Auto Scaling groups and RDS instance classes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from adapters.aws.quotas import describe_instance_types, error_code, error_message
from bot.config import AwsScope
from bot.errors import OperationFailed, Refused
from bot.ports.capacity import (
    ENV_TAG,
    SERVICE_TAG,
    AsgInstance,
    AutoScalingGroup,
    DbCluster,
    DbInstance,
    GroupTemplate,
    Image,
    Instance,
    InstanceRefresh,
    InstanceType,
    LaunchTemplate,
    RefreshRequest,
    Subnet,
    TargetHealth,
    TemplateVersion,
)

log = logging.getLogger(__name__)

_LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def _failed(action: str, error: ClientError) -> OperationFailed:
    return OperationFailed(f"{action}: {error_code(error)}: {error_message(error)}")


def _instance(raw: dict[str, Any]) -> Instance:
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    return Instance(
        id=raw["InstanceId"],
        instance_type=raw["InstanceType"],
        state=raw["State"]["Name"],
        architecture=raw.get("Architecture", "x86_64"),
        availability_zone=raw.get("Placement", {}).get("AvailabilityZone"),
        subnet_id=raw.get("SubnetId"),
        launched_at=raw["LaunchTime"],
        spot=raw.get("InstanceLifecycle") == "spot",
        name=tags.get("Name"),
        tags=tags,
    )


def _decoded(user_data: str | None) -> str | None:
    if not user_data:
        return None
    try:
        return base64.b64decode(user_data).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


class AwsEc2:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        # Launch template data by (scope, id, version): RunInstances needs its network
        # interface, which the port's model leaves out.
        self._template_data: dict[tuple[AwsScope, str, int], dict[str, Any]] = {}

    async def _ec2(self, scope: AwsScope) -> Any:
        return await self._clients.client("ec2", scope)

    async def instance_types(
        self, scope: AwsScope, names: Sequence[str]
    ) -> dict[str, InstanceType]:
        return await describe_instance_types(await self._ec2(scope), names)

    async def _describe(self, scope: AwsScope, **kwargs: Any) -> list[Instance]:
        ec2 = await self._ec2(scope)
        found: list[Instance] = []
        async for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page.get("Reservations", []):
                found.extend(_instance(raw) for raw in reservation.get("Instances", []))
        return found

    async def fleet_instances(self, scope: AwsScope, service: str, env: str) -> list[Instance]:
        return await self._describe(
            scope,
            Filters=[
                {"Name": f"tag:{SERVICE_TAG}", "Values": [service]},
                {"Name": f"tag:{ENV_TAG}", "Values": [env]},
                {"Name": "instance-state-name", "Values": _LIVE_STATES},
            ],
        )

    async def instances(self, scope: AwsScope, ids: Sequence[str]) -> list[Instance]:
        if not ids:
            return []
        # A filter, unlike InstanceIds, leaves out ids EC2 no longer knows instead of failing.
        try:
            return await self._describe(
                scope, Filters=[{"Name": "instance-id", "Values": list(ids)}]
            )
        except ClientError as error:
            raise _failed("DescribeInstances", error) from None

    async def launch_template(self, scope: AwsScope, name: str) -> LaunchTemplate:
        ec2 = await self._ec2(scope)
        try:
            response = await ec2.describe_launch_template_versions(
                LaunchTemplateName=name, Versions=["$Default"]
            )
        except ClientError as error:
            raise Refused(
                f"launch template {name!r} not found in {scope.region} ({error_code(error)})",
                hint="check environments.*.services.*.fleet.launch_template in the config",
            ) from None
        version = response["LaunchTemplateVersions"][0]
        data: dict[str, Any] = version.get("LaunchTemplateData", {})
        interfaces = data.get("NetworkInterfaces") or []
        template = LaunchTemplate(
            id=version["LaunchTemplateId"],
            name=version.get("LaunchTemplateName", name),
            version=int(version["VersionNumber"]),
            instance_type=data.get("InstanceType"),
            subnets=[i["SubnetId"] for i in interfaces if i.get("SubnetId")],
            network_interfaces=bool(interfaces),
        )
        self._template_data[(scope, template.id, template.version)] = data
        return template

    async def subnets(self, scope: AwsScope, ids: Sequence[str]) -> list[Subnet]:
        if not ids:
            return []
        ec2 = await self._ec2(scope)
        try:
            response = await ec2.describe_subnets(SubnetIds=list(ids))
        except ClientError as error:
            raise Refused(f"subnets {', '.join(ids)}: {error_message(error)}") from None
        return [
            Subnet(id=s["SubnetId"], availability_zone=s["AvailabilityZone"])
            for s in response.get("Subnets", [])
        ]

    async def launch(
        self,
        scope: AwsScope,
        template: LaunchTemplate,
        *,
        count: int,
        subnet: str | None,
        tags: dict[str, str],
        token: str,
    ) -> list[str]:
        ec2 = await self._ec2(scope)
        request: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": template.id, "Version": str(template.version)},
            "MinCount": count,
            "MaxCount": count,
            "ClientToken": token,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        }
        if subnet is not None:
            if template.network_interfaces:
                # A subnet on the request and interfaces in the template conflict; the
                # subnet goes into a copy of the template's first interface instead.
                data = self._template_data.get((scope, template.id, template.version), {})
                first = dict((data.get("NetworkInterfaces") or [{}])[0])
                for key in ("NetworkInterfaceId", "PrivateIpAddress", "PrivateIpAddresses"):
                    first.pop(key, None)
                first.update({"DeviceIndex": 0, "SubnetId": subnet})
                request["NetworkInterfaces"] = [first]
            else:
                request["SubnetId"] = subnet
        try:
            response = await ec2.run_instances(**request)
        except ClientError as error:
            raise _failed(f"RunInstances from {template.name}", error) from None
        return [i["InstanceId"] for i in response.get("Instances", [])]

    async def start(self, scope: AwsScope, ids: Sequence[str]) -> None:
        try:
            await (await self._ec2(scope)).start_instances(InstanceIds=list(ids))
        except ClientError as error:
            raise _failed(f"StartInstances {', '.join(ids)}", error) from None

    async def stop(self, scope: AwsScope, ids: Sequence[str]) -> None:
        try:
            await (await self._ec2(scope)).stop_instances(InstanceIds=list(ids))
        except ClientError as error:
            raise _failed(f"StopInstances {', '.join(ids)}", error) from None

    async def terminate(self, scope: AwsScope, ids: Sequence[str]) -> None:
        try:
            await (await self._ec2(scope)).terminate_instances(InstanceIds=list(ids))
        except ClientError as error:
            raise _failed(f"TerminateInstances {', '.join(ids)}", error) from None

    async def set_instance_type(
        self, scope: AwsScope, instance_id: str, instance_type: str
    ) -> None:
        ec2 = await self._ec2(scope)
        try:
            await ec2.modify_instance_attribute(
                InstanceId=instance_id, InstanceType={"Value": instance_type}
            )
        except ClientError as error:
            raise _failed(f"changing {instance_id} to {instance_type}", error) from None

    async def set_template_instance_type(
        self, scope: AwsScope, template: LaunchTemplate, instance_type: str
    ) -> int:
        ec2 = await self._ec2(scope)
        try:
            created = await ec2.create_launch_template_version(
                LaunchTemplateId=template.id,
                SourceVersion=str(template.version),
                VersionDescription=f"kajitori scale up to {instance_type}",
                LaunchTemplateData={"InstanceType": instance_type},
            )
            version = int(created["LaunchTemplateVersion"]["VersionNumber"])
            await ec2.modify_launch_template(
                LaunchTemplateId=template.id, DefaultVersion=str(version)
            )
        except ClientError as error:
            raise _failed(f"updating launch template {template.name}", error) from None
        return version

    async def tag_instances(
        self, scope: AwsScope, ids: Sequence[str], tags: dict[str, str]
    ) -> None:
        if not ids:
            return
        ec2 = await self._ec2(scope)
        try:
            await ec2.create_tags(
                Resources=list(ids), Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            )
        except ClientError as error:
            raise _failed(f"tagging {', '.join(ids)}", error) from None

    async def template_version(
        self, scope: AwsScope, template_id: str, version: str
    ) -> TemplateVersion:
        ec2 = await self._ec2(scope)
        try:
            response = await ec2.describe_launch_template_versions(
                LaunchTemplateId=template_id, Versions=[version]
            )
        except ClientError as error:
            raise Refused(
                f"launch template {template_id} version {version}: {error_message(error)}"
            ) from None
        raw = response["LaunchTemplateVersions"][0]
        data = raw.get("LaunchTemplateData", {})
        return TemplateVersion(
            template_id=raw["LaunchTemplateId"],
            template_name=raw.get("LaunchTemplateName", ""),
            number=int(raw["VersionNumber"]),
            image_id=data.get("ImageId"),
            user_data=_decoded(data.get("UserData")),
            description=raw.get("VersionDescription", "") or "",
        )

    async def create_template_version(
        self,
        scope: AwsScope,
        source: TemplateVersion,
        *,
        image_id: str | None,
        user_data: str | None,
        description: str,
    ) -> int:
        ec2 = await self._ec2(scope)
        data: dict[str, Any] = {}
        if image_id is not None:
            data["ImageId"] = image_id
        if user_data is not None:
            data["UserData"] = base64.b64encode(user_data.encode()).decode()
        try:
            created = await ec2.create_launch_template_version(
                LaunchTemplateId=source.template_id,
                SourceVersion=str(source.number),
                VersionDescription=description[:255],
                LaunchTemplateData=data,
            )
        except ClientError as error:
            raise _failed(f"new version of launch template {source.template_name}", error) from None
        return int(created["LaunchTemplateVersion"]["VersionNumber"])

    async def images(self, scope: AwsScope, ids: Sequence[str]) -> list[Image]:
        if not ids:
            return []
        ec2 = await self._ec2(scope)
        try:
            response = await ec2.describe_images(
                Filters=[{"Name": "image-id", "Values": list(ids)}]
            )
        except ClientError as error:
            raise _failed(f"DescribeImages {', '.join(ids)}", error) from None
        return [
            Image(id=i["ImageId"], name=i.get("Name", ""), state=i.get("State", "available"))
            for i in response.get("Images", [])
        ]

    async def newest_image(self, scope: AwsScope, name_pattern: str) -> Image | None:
        ec2 = await self._ec2(scope)
        try:
            response = await ec2.describe_images(
                Owners=["self", "amazon"], Filters=[{"Name": "name", "Values": [name_pattern]}]
            )
        except ClientError as error:
            raise _failed(f"DescribeImages {name_pattern}", error) from None
        matching = [
            i
            for i in response.get("Images", [])
            if fnmatch.fnmatchcase(i.get("Name", ""), name_pattern)
        ]
        if not matching:
            return None
        newest = max(matching, key=lambda i: (str(i.get("CreationDate", "")), i.get("Name", "")))
        return Image(
            id=newest["ImageId"], name=newest.get("Name", ""), state=newest.get("State", "")
        )


class AwsTargetGroups:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def arn(self, scope: AwsScope, name: str) -> str:
        elbv2 = await self._clients.client("elbv2", scope)
        try:
            response = await elbv2.describe_target_groups(Names=[name])
        except ClientError as error:
            raise Refused(
                f"target group {name!r} not found in {scope.region} ({error_code(error)})",
                hint="check environments.*.services.*.fleet.target_group in the config",
            ) from None
        return str(response["TargetGroups"][0]["TargetGroupArn"])

    async def register(self, scope: AwsScope, arn: str, ids: Sequence[str]) -> None:
        elbv2 = await self._clients.client("elbv2", scope)
        try:
            await elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in ids])
        except ClientError as error:
            raise _failed(f"registering {', '.join(ids)}", error) from None

    async def deregister(self, scope: AwsScope, arn: str, ids: Sequence[str]) -> None:
        elbv2 = await self._clients.client("elbv2", scope)
        try:
            await elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in ids])
        except ClientError as error:
            if error_code(error) != "InvalidTarget":  # not registered: nothing to drain
                raise _failed(f"deregistering {', '.join(ids)}", error) from None

    async def health(self, scope: AwsScope, arn: str) -> list[TargetHealth]:
        elbv2 = await self._clients.client("elbv2", scope)
        response = await elbv2.describe_target_health(TargetGroupArn=arn)
        return [
            TargetHealth(
                target_id=d["Target"]["Id"],
                state=d.get("TargetHealth", {}).get("State", "unavailable"),
                reason=d.get("TargetHealth", {}).get("Reason"),
            )
            for d in response.get("TargetHealthDescriptions", [])
        ]

    async def deregistration_delay(self, scope: AwsScope, arn: str) -> int:
        elbv2 = await self._clients.client("elbv2", scope)
        response = await elbv2.describe_target_group_attributes(TargetGroupArn=arn)
        for attribute in response.get("Attributes", []):
            if attribute.get("Key") == "deregistration_delay.timeout_seconds":
                return int(float(attribute.get("Value") or 0))
        return 300


class AwsAutoScaling:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def _instance_type(self, scope: AwsScope, group: dict[str, Any]) -> str | None:
        spec = group.get("LaunchTemplate")
        mixed = group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {})
        if spec is None and mixed:
            overrides = mixed.get("Overrides") or []
            if overrides and overrides[0].get("InstanceType"):
                return str(overrides[0]["InstanceType"])
            spec = mixed.get("LaunchTemplateSpecification")
        if spec is not None:
            ec2 = await self._clients.client("ec2", scope)
            selector = (
                {"LaunchTemplateId": spec["LaunchTemplateId"]}
                if spec.get("LaunchTemplateId")
                else {"LaunchTemplateName": spec["LaunchTemplateName"]}
            )
            response = await ec2.describe_launch_template_versions(
                **selector, Versions=[spec.get("Version") or "$Default"]
            )
            versions = response.get("LaunchTemplateVersions", [])
            if versions:
                value = versions[0].get("LaunchTemplateData", {}).get("InstanceType")
                return str(value) if value else None
            return None
        name = group.get("LaunchConfigurationName")
        if name:
            autoscaling = await self._clients.client("autoscaling", scope)
            response = await autoscaling.describe_launch_configurations(
                LaunchConfigurationNames=[name]
            )
            configurations = response.get("LaunchConfigurations", [])
            return str(configurations[0]["InstanceType"]) if configurations else None
        return None

    async def group(self, scope: AwsScope, name: str) -> AutoScalingGroup:
        autoscaling = await self._clients.client("autoscaling", scope)
        response = await autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        groups = response.get("AutoScalingGroups", [])
        if not groups:
            raise Refused(
                f"Auto Scaling group {name!r} not found in {scope.region}",
                hint="check environments.*.services.*.asg.name in the config",
            )
        raw = groups[0]
        return AutoScalingGroup(
            name=raw["AutoScalingGroupName"],
            min_size=raw["MinSize"],
            max_size=raw["MaxSize"],
            desired=raw["DesiredCapacity"],
            instances=[
                AsgInstance(
                    id=i["InstanceId"],
                    lifecycle_state=i.get("LifecycleState", ""),
                    health_status=i.get("HealthStatus", ""),
                    instance_type=i.get("InstanceType"),
                )
                for i in raw.get("Instances", [])
            ],
            instance_type=await self._instance_type(scope, raw),
            launch_template=_group_template(raw),
        )

    async def set_capacity(
        self, scope: AwsScope, name: str, desired: int, max_size: int | None = None
    ) -> None:
        autoscaling = await self._clients.client("autoscaling", scope)
        request: dict[str, Any] = {"AutoScalingGroupName": name, "DesiredCapacity": desired}
        if max_size is not None:
            request["MaxSize"] = max_size
        try:
            await autoscaling.update_auto_scaling_group(**request)
        except ClientError as error:
            raise _failed(f"UpdateAutoScalingGroup {name}", error) from None

    async def start_refresh(self, scope: AwsScope, name: str, request: RefreshRequest) -> str:
        autoscaling = await self._clients.client("autoscaling", scope)
        preferences: dict[str, Any] = {
            "MinHealthyPercentage": request.min_healthy_percentage,
            "AutoRollback": request.auto_rollback,
            "SkipMatching": request.skip_matching,
        }
        if request.checkpoints:
            preferences["CheckpointPercentages"] = request.checkpoints
            if request.checkpoint_delay_seconds is not None:
                preferences["CheckpointDelay"] = request.checkpoint_delay_seconds
        if request.instance_warmup_seconds is not None:
            preferences["InstanceWarmup"] = request.instance_warmup_seconds
        try:
            response = await autoscaling.start_instance_refresh(
                AutoScalingGroupName=name,
                Strategy="Rolling",
                DesiredConfiguration={
                    "LaunchTemplate": {
                        "LaunchTemplateId": request.template_id,
                        "Version": str(request.template_version),
                    }
                },
                Preferences=preferences,
            )
        except ClientError as error:
            if error_code(error) == "InstanceRefreshInProgress":
                raise Refused(
                    f"an instance refresh of {name} is already running; nothing was changed",
                    hint="wait for it to end, or cancel it with the job that started it",
                ) from None
            raise _failed(f"StartInstanceRefresh {name}", error) from None
        return str(response["InstanceRefreshId"])

    async def refreshes(
        self, scope: AwsScope, name: str, ids: Sequence[str] = ()
    ) -> list[InstanceRefresh]:
        autoscaling = await self._clients.client("autoscaling", scope)
        request: dict[str, Any] = {"AutoScalingGroupName": name}
        if ids:
            request["InstanceRefreshIds"] = list(ids)
        response = await autoscaling.describe_instance_refreshes(**request)
        found: list[InstanceRefresh] = []
        for raw in response.get("InstanceRefreshes", []):
            reason = raw.get("StatusReason", "") or ""
            found.append(
                InstanceRefresh(
                    id=raw["InstanceRefreshId"],
                    status=raw.get("Status", ""),
                    status_reason=reason,
                    percentage_complete=int(raw.get("PercentageComplete", 0) or 0),
                    instances_to_update=int(raw.get("InstancesToUpdate", 0) or 0),
                    waiting_at_checkpoint="checkpoint" in reason.lower(),
                )
            )
        return found

    async def cancel_refresh(self, scope: AwsScope, name: str) -> str:
        autoscaling = await self._clients.client("autoscaling", scope)
        try:
            response = await autoscaling.cancel_instance_refresh(AutoScalingGroupName=name)
        except ClientError as error:
            raise _failed(f"CancelInstanceRefresh {name}", error) from None
        return str(response["InstanceRefreshId"])

    async def rollback_refresh(self, scope: AwsScope, name: str) -> str:
        autoscaling = await self._clients.client("autoscaling", scope)
        try:
            response = await autoscaling.rollback_instance_refresh(AutoScalingGroupName=name)
        except ClientError as error:
            raise _failed(f"RollbackInstanceRefresh {name}", error) from None
        return str(response["InstanceRefreshId"])


def _group_template(raw: dict[str, Any]) -> GroupTemplate | None:
    spec = raw.get("LaunchTemplate") or raw.get("MixedInstancesPolicy", {}).get(
        "LaunchTemplate", {}
    ).get("LaunchTemplateSpecification")
    if not spec or not spec.get("LaunchTemplateId"):
        return None
    return GroupTemplate(
        id=spec["LaunchTemplateId"],
        name=spec.get("LaunchTemplateName", ""),
        version=str(spec.get("Version") or "$Default"),
    )


def _db_instance(raw: dict[str, Any], writer: bool | None) -> DbInstance:
    return DbInstance(
        id=raw["DBInstanceIdentifier"],
        instance_class=raw["DBInstanceClass"],
        status=raw.get("DBInstanceStatus", ""),
        engine=raw.get("Engine", ""),
        writer=writer,
        pending_class=raw.get("PendingModifiedValues", {}).get("DBInstanceClass"),
        maintenance_window=raw.get("PreferredMaintenanceWindow"),
    )


class AwsDatabases:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def _describe(self, scope: AwsScope, instance_id: str) -> dict[str, Any]:
        rds = await self._clients.client("rds", scope)
        try:
            response = await rds.describe_db_instances(DBInstanceIdentifier=instance_id)
        except ClientError as error:
            raise Refused(f"DB instance {instance_id!r}: {error_message(error)}") from None
        raw: dict[str, Any] = response["DBInstances"][0]
        return raw

    async def cluster(self, scope: AwsScope, cluster_id: str) -> DbCluster:
        rds = await self._clients.client("rds", scope)
        try:
            response = await rds.describe_db_clusters(DBClusterIdentifier=cluster_id)
        except ClientError as error:
            raise Refused(
                f"DB cluster {cluster_id!r} not found in {scope.region} ({error_code(error)})",
                hint="check environments.*.databases.*.cluster in the config",
            ) from None
        cluster = response["DBClusters"][0]
        members = cluster.get("DBClusterMembers", [])
        raws = await asyncio.gather(
            *(self._describe(scope, m["DBInstanceIdentifier"]) for m in members)
        )
        return DbCluster(
            id=cluster_id,
            engine=cluster.get("Engine", ""),
            members=[
                _db_instance(raw, bool(m.get("IsClusterWriter")))
                for raw, m in zip(raws, members, strict=True)
            ],
        )

    async def instance(self, scope: AwsScope, instance_id: str) -> DbInstance:
        raw = await self._describe(scope, instance_id)
        return _db_instance(raw, None)

    async def class_available(
        self, scope: AwsScope, engine: str, instance_class: str
    ) -> bool | None:
        rds = await self._clients.client("rds", scope)
        try:
            response = await rds.describe_orderable_db_instance_options(
                Engine=engine, DBInstanceClass=instance_class, MaxRecords=20
            )
            if response.get("OrderableDBInstanceOptions"):
                return True
            # An engine that lists nothing at all tells nothing about the class.
            response = await rds.describe_orderable_db_instance_options(
                Engine=engine, MaxRecords=20
            )
        except ClientError:
            return None
        return False if response.get("OrderableDBInstanceOptions") else None

    async def modify_class(
        self, scope: AwsScope, instance_id: str, instance_class: str, *, apply_now: bool
    ) -> DbInstance:
        rds = await self._clients.client("rds", scope)
        try:
            response = await rds.modify_db_instance(
                DBInstanceIdentifier=instance_id,
                DBInstanceClass=instance_class,
                ApplyImmediately=apply_now,
            )
        except ClientError as error:
            raise _failed(f"ModifyDBInstance {instance_id}", error) from None
        return _db_instance(response["DBInstance"], None)
