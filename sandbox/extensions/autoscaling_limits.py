"""Auto Scaling: DescribeAccountLimits, and the group quota enforced on creation."""

from __future__ import annotations

from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

from sandbox.extensions import service_quotas
from sandbox.extensions.patching import add, patch

MAX_LAUNCH_CONFIGURATIONS = 200


class LimitExceededError(AutoscalingClientError):
    code = "LimitExceeded"


def _group_limit(backend: AutoScalingBackend) -> int:
    return int(
        service_quotas.quota_value(
            backend.account_id,
            backend.region_name,
            "autoscaling",
            service_quotas.AUTO_SCALING_GROUPS_PER_REGION,
        )
    )


def _describe_account_limits(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    return ActionResult(
        {
            "MaxNumberOfAutoScalingGroups": _group_limit(backend),
            "MaxNumberOfLaunchConfigurations": MAX_LAUNCH_CONFIGURATIONS,
            "NumberOfAutoScalingGroups": len(backend.autoscaling_groups),
            "NumberOfLaunchConfigurations": len(backend.launch_configurations),
        }
    )


def install() -> None:
    def wrap_create_auto_scaling_group(original: Any) -> Any:
        def create_auto_scaling_group(self: AutoScalingBackend, *args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("name", args[0] if args else None)
            limit = _group_limit(self)
            if name not in self.autoscaling_groups and len(self.autoscaling_groups) >= limit:
                raise LimitExceededError(
                    f"You have reached your limit of {limit} Auto Scaling groups."
                )
            return original(self, *args, **kwargs)

        return create_auto_scaling_group

    add(AutoScalingResponse, "describe_account_limits", _describe_account_limits)
    patch(AutoScalingBackend, "create_auto_scaling_group", wrap_create_auto_scaling_group)
