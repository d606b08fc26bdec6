"""EC2: quota enforcement, instance-type checks and timed state transitions.

- RunInstances refuses unknown instance types and launches that would take the running
  and pending On-Demand Standard instances over the L-1216C47A vCPU quota.
- AllocateAddress refuses to go over the L-0263D0A3 Elastic IP quota.
- ModifyInstanceAttribute InstanceType needs a stopped instance and a known type of the
  same architecture.
- Instances start `pending` and stop through `stopping`; the transition completes
  `timing.instance_transition` seconds later, evaluated whenever the state is read.
- A region's EC2 backend leaves out the ~1,300 ECS-optimized images moto would load:
  nothing here runs ECS on EC2, and loading them made every sandbox reset slower.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import EC2Backend
from moto.ec2.models import amis as amis_module
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.ec2.models.instances import Instance

from sandbox.extensions import model_state, service_quotas
from sandbox.extensions.patching import patch
from sandbox.extensions.runtime import Runtime

# The On-Demand Standard bucket: families A, C, D, H, I, M, R, T and Z. Some families
# share a first letter with the bucket but have their own quotas.
_STANDARD_FIRST_LETTERS = frozenset("acdhimrtz")
_OTHER_BUCKET_PREFIXES = ("mac", "inf", "trn", "dl", "hpc")

_STATE_CODES = {"pending": 0, "running": 16, "stopping": 64, "stopped": 80}


class VcpuLimitExceededError(EC2ClientError):
    def __init__(self, limit: float) -> None:
        super().__init__(
            "VcpuLimitExceeded",
            f"You have requested more vCPU capacity than your current vCPU limit of "
            f"{int(limit)} allows for the instance bucket that the specified instance type "
            f"belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to "
            f"request an adjustment to this limit.",
        )


class AddressLimitExceededError(EC2ClientError):
    def __init__(self) -> None:
        super().__init__(
            "AddressLimitExceeded", "The maximum number of addresses has been reached."
        )


class UnknownInstanceTypeError(EC2ClientError):
    def __init__(self, instance_type: str) -> None:
        super().__init__(
            "InvalidParameterValue", f"Invalid value '{instance_type}' for InstanceType."
        )


class IncorrectInstanceStateError(EC2ClientError):
    def __init__(self, instance_id: str, state: str) -> None:
        super().__init__(
            "IncorrectInstanceState", f"The instance '{instance_id}' is not in the '{state}' state."
        )


class InvalidInstanceAttributeValueError(EC2ClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidInstanceAttributeValue", message)


def is_standard_on_demand(instance_type: str) -> bool:
    name = instance_type.lower()
    return name[:1] in _STANDARD_FIRST_LETTERS and not name.startswith(_OTHER_BUCKET_PREFIXES)


def default_vcpus(instance_type: str) -> int:
    info = INSTANCE_TYPES.get(instance_type)
    if info is None:
        return 0
    return int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0))


def _architectures(instance_type: str) -> set[str]:
    info = INSTANCE_TYPES.get(instance_type, {})
    return set(info.get("ProcessorInfo", {}).get("SupportedArchitectures", []))


def standard_vcpus_in_use(backend: EC2Backend) -> int:
    """vCPUs of pending and running On-Demand Standard instances (the L-1216C47A usage)."""
    return sum(
        default_vcpus(instance.instance_type)
        for instance in backend.all_instances()
        if instance.state in ("pending", "running")
        and instance.lifecycle != "spot"
        and is_standard_on_demand(instance.instance_type)
    )


def _settle(runtime: Runtime, instance: Instance) -> None:
    transition: tuple[float, str] | None = model_state.get(instance, "transition", None)
    if transition is None or runtime.now() < transition[0]:
        return
    model_state.put(instance, "transition", None)
    instance._state.name = transition[1]
    instance._state.code = _STATE_CODES[transition[1]]


def _begin_transition(runtime: Runtime, instance: Instance, through: str, target: str) -> None:
    delay = runtime.delay(runtime.timing.instance_transition)
    at = runtime.now() + delay
    if target == "running":
        # Load balancer health checks can only pass once the instance runs.
        model_state.put(
            instance,
            "health_checks_pass_at",
            at + runtime.delay(runtime.timing.target_health_check),
        )
    if delay <= 0:
        model_state.put(instance, "transition", None)
        instance._state.name = target
        instance._state.code = _STATE_CODES[target]
        return
    model_state.put(instance, "transition", (at, target))
    instance._state.name = through
    instance._state.code = _STATE_CODES[through]


def health_checks_pass_at(runtime: Runtime, instance: Instance) -> float:
    """The earliest time at which a load balancer can see this instance healthy."""
    _settle(runtime, instance)
    return model_state.get(instance, "health_checks_pass_at", 0.0)


def _skip_ecs_optimized_images() -> None:
    namespace = vars(amis_module)
    original = namespace["load_resource"]
    if original.__name__ == "load_resource_without_ecs_images":
        return

    def load_resource_without_ecs_images(path: str, *args: Any, **kwargs: Any) -> Any:
        if path.startswith("ec2/resources/ecs/optimized_amis/"):
            return []
        return original(path, *args, **kwargs)

    namespace["load_resource"] = load_resource_without_ecs_images


def install(runtime: Runtime) -> None:
    _skip_ecs_optimized_images()

    def settled_property(original: property) -> property:
        def read(self: Instance) -> Any:
            _settle(runtime, self)
            return original.fget(self) if original.fget else None

        return property(read)

    for name in ("instance_state", "state", "state_code"):
        patch(Instance, name, settled_property)

    def wrap_is_running(original: Any) -> Any:
        def is_running(self: Instance) -> bool:
            _settle(runtime, self)
            return bool(original(self))

        return is_running

    def wrap_start(original: Any) -> Any:
        def start(self: Instance) -> Any:
            _settle(runtime, self)
            if self._state.name in ("pending", "running"):
                return original(self)
            previous = original(self)
            _begin_transition(runtime, self, "pending", "running")
            return previous

        return start

    def wrap_stop(original: Any) -> Any:
        def stop(self: Instance) -> Any:
            _settle(runtime, self)
            if self._state.name in ("stopping", "stopped"):
                return original(self)
            previous = original(self)
            _begin_transition(runtime, self, "stopping", "stopped")
            return previous

        return stop

    def wrap_terminate(original: Any) -> Any:
        def terminate(self: Instance) -> Any:
            _settle(runtime, self)
            model_state.put(self, "transition", None)
            return original(self)

        return terminate

    def wrap_run_instances(original: Any) -> Any:
        def run_instances(
            self: EC2Backend,
            image_id: str,
            count: int,
            user_data: Any,
            security_group_names: list[str],
            **kwargs: Any,
        ) -> Any:
            instance_type = str(kwargs.get("instance_type") or "m1.small")
            if kwargs.get("launch_template") and kwargs.get("is_instance_type_default"):
                template = self._get_template_from_args(kwargs["launch_template"]).data
                instance_type = str(template.get("InstanceType") or instance_type)
            if instance_type not in INSTANCE_TYPES:
                raise UnknownInstanceTypeError(instance_type)
            spot = bool(kwargs.get("instance_market_options"))
            if is_standard_on_demand(instance_type) and not spot:
                limit = service_quotas.quota_value(
                    self.account_id, self.region_name, "ec2", service_quotas.EC2_STANDARD_VCPUS
                )
                wanted = standard_vcpus_in_use(self) + int(count) * default_vcpus(instance_type)
                if wanted > limit:
                    raise VcpuLimitExceededError(limit)
            reservation = original(self, image_id, count, user_data, security_group_names, **kwargs)
            for instance in reservation.instances:
                _begin_transition(runtime, instance, "pending", "running")
            return reservation

        return run_instances

    def wrap_allocate_address(original: Any) -> Any:
        def allocate_address(self: EC2Backend, *args: Any, **kwargs: Any) -> Any:
            limit = service_quotas.quota_value(
                self.account_id, self.region_name, "ec2", service_quotas.EC2_ELASTIC_IPS
            )
            if len(self.addresses) >= limit:
                raise AddressLimitExceededError()
            return original(self, *args, **kwargs)

        return allocate_address

    def wrap_modify_instance_attribute(original: Any) -> Any:
        def modify_instance_attribute(
            self: EC2Backend, instance_id: str, key: str, value: Any
        ) -> Any:
            if key == "instance_type":
                instance = self.get_instance(instance_id)
                new_type = str(value)
                if new_type not in INSTANCE_TYPES:
                    raise InvalidInstanceAttributeValueError(
                        f"The instanceType '{new_type}' is invalid."
                    )
                if instance.state != "stopped":
                    raise IncorrectInstanceStateError(instance_id, "stopped")
                if instance.architecture not in _architectures(new_type):
                    raise InvalidInstanceAttributeValueError(
                        f"The instance type '{new_type}' does not support the "
                        f"'{instance.architecture}' architecture of instance '{instance_id}'."
                    )
            return original(self, instance_id, key, value)

        return modify_instance_attribute

    patch(Instance, "is_running", wrap_is_running)
    patch(Instance, "start", wrap_start)
    patch(Instance, "stop", wrap_stop)
    patch(Instance, "terminate", wrap_terminate)
    patch(EC2Backend, "run_instances", wrap_run_instances)
    patch(EC2Backend, "allocate_address", wrap_allocate_address)
    patch(EC2Backend, "modify_instance_attribute", wrap_modify_instance_attribute)
