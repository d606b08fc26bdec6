"""ELBv2: target health over time, account limits and per-region quotas.

moto reports a registered target `healthy` at once and a deregistered one `unused` at
once. Here a target is `initial` for `timing.target_health_check` after it registers (or
after its instance last started), and `draining` after it deregisters for the group's
`deregistration_delay.timeout_seconds` (AWS's default 300), in sandbox time: never longer
than `timing.deregistration_delay`, and not at all when the group's delay is 0.
Deregistering an unknown target succeeds, as on AWS.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import EC2Backend
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup
from moto.elbv2.responses import ELBV2Response

from sandbox.extensions import ec2_instances, model_state, service_quotas
from sandbox.extensions.patching import patch
from sandbox.extensions.runtime import Runtime

# Defaults of the AWS account limits that DescribeAccountLimits reports; two of them
# follow the Service Quotas values of the region.
ACCOUNT_LIMITS = {
    "application-load-balancers": 50,
    "target-groups": 3000,
    "targets-per-application-load-balancer": 1000,
    "listeners-per-application-load-balancer": 50,
    "rules-per-application-load-balancer": 100,
    "certificates-per-application-load-balancer": 25,
}


class TooManyLoadBalancersError(ELBClientError):
    def __init__(self) -> None:
        super().__init__(
            "TooManyLoadBalancers", "The quota for the number of load balancers has been reached."
        )


class TooManyTargetGroupsError(ELBClientError):
    def __init__(self) -> None:
        super().__init__(
            "TooManyTargetGroups", "The quota for the number of target groups has been reached."
        )


def _health_checks_pass_at(tg: FakeTargetGroup) -> dict[str, float]:
    """When each registered target's initial health checks pass."""
    passes_at: dict[str, float] = model_state.get_or_create(tg, "health_checks_pass_at", dict)
    return passes_at


def _draining(tg: FakeTargetGroup) -> dict[str, tuple[dict[str, Any], float]]:
    """Deregistered targets still draining, with the time their draining ends."""
    draining: dict[str, tuple[dict[str, Any], float]] = model_state.get_or_create(
        tg, "draining", dict
    )
    return draining


def _status(
    tg: FakeTargetGroup, target: dict[str, Any], state: str, reason: str | None, text: str | None
) -> FakeHealthStatus:
    return FakeHealthStatus(
        target["Id"], target.get("Port", tg.port), tg.health_check_port, state, reason, text
    )


def draining_time(tg: FakeTargetGroup, runtime: Runtime) -> float:
    """How long a target of `tg` drains: the group's delay, compressed to sandbox time."""
    raw = tg.attributes.get("deregistration_delay.timeout_seconds", 300)
    try:
        delay = float(str(raw))
    except (TypeError, ValueError):
        delay = 300.0
    return min(delay, runtime.timing.deregistration_delay) if delay > 0 else 0.0


def install(runtime: Runtime) -> None:
    def begin_draining(tg: FakeTargetGroup, target_id: str) -> None:
        target = tg.targets.pop(target_id)
        until = runtime.deadline(draining_time(tg, runtime))
        _draining(tg)[target_id] = (target, until)
        _health_checks_pass_at(tg).pop(target_id, None)

    def expire_draining(tg: FakeTargetGroup) -> None:
        now = runtime.now()
        draining = _draining(tg)
        for target_id, (target, until) in list(draining.items()):
            if until <= now:
                del draining[target_id]
                tg.deregistered_targets[target_id] = target

    def wrap_register(original: Any) -> Any:
        def register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            original(self, targets)
            passes_at = runtime.deadline(runtime.timing.target_health_check)
            for target in targets:
                _draining(self).pop(target["Id"], None)
                _health_checks_pass_at(self)[target["Id"]] = passes_at

        return register

    def deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
        for target in targets:
            if target["Id"] in self.targets:
                begin_draining(self, target["Id"])

    def deregister_terminated_instances(self: FakeTargetGroup, instance_ids: list[str]) -> None:
        for target_id in list(self.targets):
            if target_id in instance_ids:
                begin_draining(self, target_id)

    def wrap_health_for(original: Any) -> Any:
        def health_for(
            self: FakeTargetGroup, target: dict[str, Any], ec2_backend: EC2Backend
        ) -> FakeHealthStatus:
            expire_draining(self)
            target_id = target["Id"]
            registered = self.targets.get(target_id)
            if registered is None:
                if target_id in _draining(self):
                    return _status(
                        self,
                        _draining(self)[target_id][0],
                        "draining",
                        "Target.DeregistrationInProgress",
                        "Target deregistration is in progress",
                    )
                status: FakeHealthStatus = original(self, target, ec2_backend)
                return status
            passes_at = _health_checks_pass_at(self).get(target_id, 0.0)
            if target_id.startswith("i-"):
                instance = ec2_backend.get_instance_by_id(target_id)
                if instance is not None:
                    if instance.state != "running":
                        return _status(
                            self,
                            registered,
                            "unused",
                            "Target.InvalidState",
                            f"Target is in the {instance.state} state",
                        )
                    passes_at = max(
                        passes_at, ec2_instances.health_checks_pass_at(runtime, instance)
                    )
            if not self.load_balancer_arns:
                return _status(
                    self,
                    registered,
                    "unused",
                    "Target.NotInUse",
                    "Target group is not configured to receive traffic from the load balancer",
                )
            if runtime.now() < passes_at:
                return _status(
                    self,
                    registered,
                    "initial",
                    "Elb.InitialHealthChecking",
                    "Initial health checks in progress",
                )
            return _status(self, registered, "healthy", None, None)

        return health_for

    def wrap_describe_target_health(original: Any) -> Any:
        def describe_target_health(
            self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
        ) -> list[FakeHealthStatus]:
            tg = self.target_groups.get(target_group_arn)
            if tg is not None and not targets:
                expire_draining(tg)
                targets = [
                    *tg.targets.values(),
                    *(target for target, _until in _draining(tg).values()),
                ]
            result: list[FakeHealthStatus] = original(self, target_group_arn, targets)
            return result

        return describe_target_health

    def wrap_create_load_balancer(original: Any) -> Any:
        def create_load_balancer(self: ELBv2Backend, *args: Any, **kwargs: Any) -> Any:
            kind = kwargs.get("loadbalancer_type") or "application"
            if kind == "application":
                limit = service_quotas.quota_value(
                    self.account_id,
                    self.region_name,
                    "elasticloadbalancing",
                    service_quotas.ALBS_PER_REGION,
                )
                existing = sum(1 for lb in self.load_balancers.values() if lb.type == kind)
                if existing >= limit:
                    raise TooManyLoadBalancersError()
            return original(self, *args, **kwargs)

        return create_load_balancer

    def wrap_create_target_group(original: Any) -> Any:
        def create_target_group(self: ELBv2Backend, name: str, **kwargs: Any) -> Any:
            limit = service_quotas.quota_value(
                self.account_id,
                self.region_name,
                "elasticloadbalancing",
                service_quotas.TARGET_GROUPS_PER_REGION,
            )
            if len(self.target_groups) >= limit and not any(
                tg.name == name for tg in self.target_groups.values()
            ):
                raise TooManyTargetGroupsError()
            return original(self, name, **kwargs)

        return create_target_group

    def describe_account_limits(self: ELBV2Response) -> ActionResult:
        backend = self.elbv2_backend
        limits = dict(ACCOUNT_LIMITS)
        for name, code in (
            ("application-load-balancers", service_quotas.ALBS_PER_REGION),
            ("target-groups", service_quotas.TARGET_GROUPS_PER_REGION),
        ):
            limits[name] = int(
                service_quotas.quota_value(
                    backend.account_id, backend.region_name, "elasticloadbalancing", code
                )
            )
        return ActionResult({"Limits": [{"Name": k, "Max": str(v)} for k, v in limits.items()]})

    patch(FakeTargetGroup, "register", wrap_register)
    patch(FakeTargetGroup, "deregister", lambda _original: deregister)
    patch(
        FakeTargetGroup,
        "deregister_terminated_instances",
        lambda _original: deregister_terminated_instances,
    )
    patch(FakeTargetGroup, "health_for", wrap_health_for)
    patch(ELBv2Backend, "describe_target_health", wrap_describe_target_health)
    patch(ELBv2Backend, "create_load_balancer", wrap_create_load_balancer)
    patch(ELBv2Backend, "create_target_group", wrap_create_target_group)
    patch(ELBV2Response, "describe_account_limits", lambda _original: describe_account_limits)
