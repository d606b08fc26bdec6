"""What `scale`, `limits`, `status` (fleets, Auto Scaling groups) and the quota watcher need
from AWS: desired counts, instances, target groups, Auto Scaling groups, RDS instance classes,
quotas and their usage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from bot.config import AwsScope

# Tags that mark the instances of a fleet (EC2 without Auto Scaling).
SERVICE_TAG = "kajitori:service"
ENV_TAG = "kajitori:env"
# The version a fleet instance runs, written by each deploy (and the seed) on the instance.
VERSION_TAG = "kajitori:version"
# A launch template version made by a deploy says its version in its description.
TEMPLATE_VERSION_PREFIX = "kajitori:version="
# Service quota codes kajitori reads.
EC2_STANDARD_VCPUS = "L-1216C47A"
EC2_ELASTIC_IPS = "L-0263D0A3"
VPCS_PER_REGION = "L-F678F1CE"
ALBS_PER_REGION = "L-53DA6B97"
TARGET_GROUPS_PER_REGION = "L-B22855CB"
AUTO_SCALING_GROUPS_PER_REGION = "L-CDE20ADC"
FARGATE_VCPUS = "L-3032A538"

# The On-Demand Standard bucket counts families A, C, D, H, I, M, R, T and Z; a few
# families that share a first letter have quotas of their own.
_STANDARD_FIRST_LETTERS = frozenset("acdhimrtz")
_OTHER_BUCKETS = ("mac", "inf", "trn", "dl", "hpc")


def is_standard_on_demand(instance_type: str) -> bool:
    name = instance_type.lower()
    return name[:1] in _STANDARD_FIRST_LETTERS and not name.startswith(_OTHER_BUCKETS)


# The scope of account-wide Route 53 limits in a `LimitUsage` (others are regions).
ROUTE53_SCOPE = "route53"


class InstanceType(BaseModel, defer_build=True):
    name: str
    vcpus: int
    architectures: list[str]


class Instance(BaseModel, defer_build=True):
    id: str
    instance_type: str
    state: str  # pending | running | stopping | stopped | shutting-down | terminated
    architecture: str
    availability_zone: str | None = None
    subnet_id: str | None = None
    launched_at: datetime
    spot: bool = False
    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def version(self) -> str | None:
        return self.tags.get(VERSION_TAG)


class LaunchTemplate(BaseModel, defer_build=True):
    id: str
    name: str
    version: int
    instance_type: str | None
    subnets: list[str] = Field(default_factory=list)
    # The template defines network interfaces: a subnet goes into them, not on the request.
    network_interfaces: bool = False


class TemplateVersion(BaseModel, defer_build=True):
    """One version of a launch template, with what a deploy changes in it."""

    template_id: str
    template_name: str
    number: int
    image_id: str | None = None
    user_data: str | None = None  # decoded
    description: str = ""

    @property
    def app_version(self) -> str | None:
        """The version a deploy recorded in the description, if it made this one."""
        if self.description.startswith(TEMPLATE_VERSION_PREFIX):
            return self.description.removeprefix(TEMPLATE_VERSION_PREFIX).split()[0]
        return None


class Image(BaseModel, defer_build=True):
    id: str
    name: str
    state: str = "available"


class Subnet(BaseModel, defer_build=True):
    id: str
    availability_zone: str


class TargetHealth(BaseModel, defer_build=True):
    target_id: str
    state: str  # initial | healthy | unhealthy | unused | draining | unavailable
    reason: str | None = None


class AsgInstance(BaseModel, defer_build=True):
    id: str
    lifecycle_state: str  # Pending | InService | Terminating | ...
    health_status: str
    instance_type: str | None = None


class GroupTemplate(BaseModel, defer_build=True):
    """The launch template an Auto Scaling group launches from."""

    id: str
    name: str
    version: str  # a number, `$Latest` or `$Default`


class InstanceRefresh(BaseModel, defer_build=True):
    """DescribeInstanceRefreshes, one entry."""

    id: str
    status: str  # Pending | InProgress | Successful | Failed | Cancelling | Cancelled |
    # RollbackInProgress | RollbackFailed | RollbackSuccessful | Baking
    status_reason: str = ""
    percentage_complete: int = 0
    instances_to_update: int = 0
    checkpoint_reached: int | None = None  # the percentage of the last checkpoint passed
    waiting_at_checkpoint: bool = False

    @property
    def active(self) -> bool:
        return self.status in (
            "Pending",
            "InProgress",
            "Cancelling",
            "RollbackInProgress",
            "Baking",
        )


class RefreshRequest(BaseModel, defer_build=True):
    """StartInstanceRefresh: the desired template version and the preferences."""

    template_id: str
    template_version: int
    min_healthy_percentage: int = 90
    checkpoints: list[int] = Field(default_factory=list)
    checkpoint_delay_seconds: int | None = None
    auto_rollback: bool = False
    instance_warmup_seconds: int | None = None
    skip_matching: bool = False


class AutoScalingGroup(BaseModel, defer_build=True):
    name: str
    min_size: int
    max_size: int
    desired: int
    instances: list[AsgInstance] = Field(default_factory=list)
    # The instance type new instances get (launch template or configuration), when one.
    instance_type: str | None = None
    launch_template: GroupTemplate | None = None

    @property
    def in_service(self) -> int:
        return sum(1 for i in self.instances if i.lifecycle_state == "InService")


class DbInstance(BaseModel, defer_build=True):
    id: str
    instance_class: str
    status: str
    engine: str
    writer: bool | None = None  # Aurora: the cluster's writer; None outside a cluster
    pending_class: str | None = None
    maintenance_window: str | None = None


class DbCluster(BaseModel, defer_build=True):
    id: str
    engine: str
    members: list[DbInstance]


class Quota(BaseModel, defer_build=True):
    service_code: str
    code: str
    name: str
    value: float
    applied: bool  # False: the AWS default (no applied value in the account)


class LimitUsage(BaseModel, defer_build=True):
    """One row of `limits`: how much of a limit is used, where."""

    scope: str  # a region, or `route53` for per-zone limits
    account: str | None = None  # the AWS account it was read in
    name: str
    used: float
    limit: float
    code: str | None = None  # the Service Quotas code, where there is one

    @property
    def percent(self) -> float:
        if self.limit <= 0:
            return 100.0 if self.used > 0 else 0.0
        return 100.0 * self.used / self.limit

    @property
    def key(self) -> str:
        where = f"{self.account}/{self.scope}" if self.account else self.scope
        return f"{where}/{self.code or self.name}"


class LimitReport(BaseModel, defer_build=True):
    rows: list[LimitUsage] = Field(default_factory=list)
    # What could not be read, one line each ("ap-northeast-1 VPCs: AccessDenied ...").
    failures: list[str] = Field(default_factory=list)


class Ec2Port(Protocol):
    async def instance_types(
        self, scope: AwsScope, names: Sequence[str]
    ) -> dict[str, InstanceType]:
        """The known types among `names`; an unknown name is missing from the result."""

    async def fleet_instances(self, scope: AwsScope, service: str, env: str) -> list[Instance]:
        """The fleet's instances that are not terminated or shutting down."""

    async def instances(self, scope: AwsScope, ids: Sequence[str]) -> list[Instance]: ...
    async def launch_template(self, scope: AwsScope, name: str) -> LaunchTemplate: ...
    async def subnets(self, scope: AwsScope, ids: Sequence[str]) -> list[Subnet]: ...

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
        """RunInstances from the template; `token` makes a retried request launch nothing more."""

    async def start(self, scope: AwsScope, ids: Sequence[str]) -> None: ...
    async def stop(self, scope: AwsScope, ids: Sequence[str]) -> None: ...
    async def terminate(self, scope: AwsScope, ids: Sequence[str]) -> None: ...
    async def set_instance_type(
        self, scope: AwsScope, instance_id: str, instance_type: str
    ) -> None: ...

    async def set_template_instance_type(
        self, scope: AwsScope, template: LaunchTemplate, instance_type: str
    ) -> int:
        """A new default version of the template with `instance_type`; returns its number."""

    async def tag_instances(
        self, scope: AwsScope, ids: Sequence[str], tags: dict[str, str]
    ) -> None: ...

    async def template_version(
        self, scope: AwsScope, template_id: str, version: str
    ) -> TemplateVersion:
        """A version (a number, `$Latest` or `$Default`) of a launch template."""

    async def create_template_version(
        self,
        scope: AwsScope,
        source: TemplateVersion,
        *,
        image_id: str | None,
        user_data: str | None,
        description: str,
    ) -> int:
        """A new version of the template from `source` with the image or user data
        changed; returns its number (the default version is left as it is)."""

    async def images(self, scope: AwsScope, ids: Sequence[str]) -> list[Image]: ...

    async def newest_image(self, scope: AwsScope, name_pattern: str) -> Image | None:
        """The newest image of this account (or Amazon's) whose name matches."""


class TargetGroupPort(Protocol):
    async def arn(self, scope: AwsScope, name: str) -> str: ...
    async def register(self, scope: AwsScope, arn: str, ids: Sequence[str]) -> None: ...
    async def deregister(self, scope: AwsScope, arn: str, ids: Sequence[str]) -> None: ...
    async def health(self, scope: AwsScope, arn: str) -> list[TargetHealth]:
        """Every target the group knows, draining ones included."""

    async def deregistration_delay(self, scope: AwsScope, arn: str) -> int:
        """The group's `deregistration_delay.timeout_seconds` (AWS's default: 300)."""


class AutoScalingPort(Protocol):
    async def group(self, scope: AwsScope, name: str) -> AutoScalingGroup: ...
    async def set_capacity(
        self, scope: AwsScope, name: str, desired: int, max_size: int | None = None
    ) -> None: ...

    async def start_refresh(self, scope: AwsScope, name: str, request: RefreshRequest) -> str:
        """StartInstanceRefresh; the refresh id. Refused when one is already running."""

    async def refreshes(
        self, scope: AwsScope, name: str, ids: Sequence[str] = ()
    ) -> list[InstanceRefresh]:
        """The group's instance refreshes, newest first (or those named)."""

    async def cancel_refresh(self, scope: AwsScope, name: str) -> str: ...
    async def rollback_refresh(self, scope: AwsScope, name: str) -> str: ...


class DatabaseCapacityPort(Protocol):
    async def cluster(self, scope: AwsScope, cluster_id: str) -> DbCluster: ...
    async def instance(self, scope: AwsScope, instance_id: str) -> DbInstance: ...
    async def class_available(
        self, scope: AwsScope, engine: str, instance_class: str
    ) -> bool | None:
        """Whether the engine can run on the class; None when it cannot be told."""

    async def modify_class(
        self, scope: AwsScope, instance_id: str, instance_class: str, *, apply_now: bool
    ) -> DbInstance: ...


class QuotaPort(Protocol):
    async def quota(self, scope: AwsScope, service_code: str, code: str) -> Quota:
        """The applied value, else AWS's default."""

    async def standard_vcpus_in_use(self, scope: AwsScope) -> int:
        """vCPUs of running and pending On-Demand Standard instances (the L-1216C47A usage)."""

    async def fargate_vcpus_in_use(self, scope: AwsScope) -> float:
        """vCPUs of the running and pending Fargate tasks (the L-3032A538 usage)."""

    async def limits(self, scopes: Sequence[AwsScope]) -> LimitReport:
        """Every limit `limits` shows, for the accounts and regions of these scopes (each
        account and region once) and each account's hosted zones."""
