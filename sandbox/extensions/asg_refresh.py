"""Auto Scaling instance refresh: StartInstanceRefresh, DescribeInstanceRefreshes,
CancelInstanceRefresh and RollbackInstanceRefresh, which moto lacks.

A refresh replaces the group's instances in batches and plays out over time, evaluated
lazily whenever an Auto Scaling request comes in (nothing runs between requests):

- `Pending` when started, `InProgress` from the next request on.
- Each batch terminates up to `(100 - MinHealthyPercentage)%` of the group (at least one
  instance) and launches replacements from the desired launch template version. A
  replacement is `Pending` until its warm-up (`timing.asg_instance_warmup`) has passed,
  then `InService` and counted in `PercentageComplete`; `InstancesToUpdate` is what is left.
- `CheckpointPercentages`: once `PercentageComplete` reaches a checkpoint the refresh waits
  `CheckpointDelay` (default 3600 s), in sandbox time: never longer than
  `timing.asg_checkpoint_delay`. Its `StatusReason` says it waits at the checkpoint.
- A replacement launched from an image whose name has the word `broken` (or whose user
  data has it) fails its health checks: the refresh fails. With `AutoRollback` it turns
  `RollbackInProgress`, replaces the new instances with the group's previous template
  version and ends `RollbackSuccessful`; without, it ends `Failed` and the unhealthy
  instances are replaced from the group's own (unchanged) configuration.
- When every instance is replaced the refresh is `Successful` and the group's launch
  template becomes the desired version.
- CancelInstanceRefresh: `Cancelling`, then `Cancelled`; instances already replaced stay.
  RollbackInstanceRefresh: `RollbackInProgress` as above. Both answer
  `ActiveInstanceRefreshNotFound` when no refresh is running.
- StartInstanceRefresh while one is running: `InstanceRefreshInProgress`; `AutoRollback`
  without a desired configuration, or for a group on `$Latest`/`$Default`: `ValidationError`.
"""

from __future__ import annotations

import base64
import contextlib
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import (
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

from sandbox.extensions import model_state
from sandbox.extensions.patching import add, patch
from sandbox.extensions.runtime import Runtime

BROKEN = re.compile(r"\bbroken\b")
ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
DEFAULT_CHECKPOINT_DELAY = 3600
MAX_STEPS_PER_REQUEST = 200
ASG_NAME_TAG = "aws:autoscaling:groupName"


class InstanceRefreshInProgressError(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


class ActiveInstanceRefreshNotFoundError(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


class RefreshValidationError(AutoscalingClientError):
    code = "ValidationError"


def _timestamp(at: float) -> datetime:
    return datetime.fromtimestamp(at, tz=UTC).replace(tzinfo=None)


@dataclass
class Refresh:
    id: str
    group: str
    started: float
    preferences: dict[str, Any]
    desired: tuple[str, int] | None  # (template id, version)
    previous: tuple[str, int] | None
    to_update: list[str]  # instance ids still on the old configuration
    total: int
    status: str = "Pending"
    reason: str = ""
    ended: float | None = None
    replaced: int = 0
    # New instances warming up: id -> the time their warm-up ends.
    warming: dict[str, float] = field(default_factory=dict)
    checkpoint_until: float | None = None
    checkpoints_done: list[int] = field(default_factory=list)
    rolled_back: int = 0
    # Instances launched by this refresh (rolled back if it rolls back).
    launched: list[str] = field(default_factory=list)

    @property
    def percentage(self) -> int:
        if self.total == 0:
            return 100
        return min(100, int(100 * self.replaced / self.total))

    def describe(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "InstanceRefreshId": self.id,
            "AutoScalingGroupName": self.group,
            "Status": self.status,
            "StatusReason": self.reason,
            "StartTime": _timestamp(self.started),
            "PercentageComplete": self.percentage,
            "InstancesToUpdate": len(self.to_update) + len(self.warming),
            "Preferences": self.preferences,
        }
        if self.ended is not None:
            result["EndTime"] = _timestamp(self.ended)
        if self.desired is not None:
            result["DesiredConfiguration"] = {
                "LaunchTemplate": {
                    "LaunchTemplateId": self.desired[0],
                    "Version": str(self.desired[1]),
                }
            }
        if self.status.startswith("Rollback"):
            result["RollbackDetails"] = {
                "RollbackReason": self.reason,
                "PercentageCompleteOnRollback": self.percentage,
                "InstancesToUpdateOnRollback": len(self.to_update),
            }
        return result


def _refreshes(group: FakeAutoScalingGroup) -> list[Refresh]:
    refreshes: list[Refresh] = model_state.get_or_create(group, "refreshes", list)
    return refreshes


def _instance_version(instance: Any) -> tuple[str, int] | None:
    return model_state.get(instance, "template_version", None)


class Refresher:
    def __init__(self, runtime: Runtime, backend: AutoScalingBackend) -> None:
        self.runtime = runtime
        self.backend = backend
        self.ec2 = backend.ec2_backend

    # -- launch templates -----------------------------------------------------------

    def resolve(self, template_id: str, version: str | None) -> tuple[str, int]:
        template = self.ec2.describe_launch_templates(template_ids=[template_id])[0]
        if version in (None, "", "$Default"):
            number = int(template.default_version_number)
        elif version == "$Latest":
            number = int(template.latest_version_number)
        else:
            number = int(str(version))
        template.get_version(number)  # raises for an unknown version
        return template.id, number

    def group_version(self, group: FakeAutoScalingGroup) -> tuple[str, int] | None:
        template = group.ec2_launch_template
        if template is None:
            return None
        return self.resolve(template.id, group.launch_template_version)

    def is_broken(self, version: tuple[str, int]) -> bool:
        template = self.ec2.describe_launch_templates(template_ids=[version[0]])[0]
        data = template.get_version(version[1]).data
        user_data = str(data.get("UserData") or "")
        if user_data:
            with contextlib.suppress(ValueError):
                user_data = base64.b64decode(user_data).decode()
        if BROKEN.search(user_data):
            return True
        image_id = data.get("ImageId")
        if image_id:
            images = self.ec2.describe_images(ami_ids=[image_id])
            if images and BROKEN.search(str(images[0].name or "")):
                return True
        return False

    # -- instances ------------------------------------------------------------------

    def launch(self, group: FakeAutoScalingGroup, version: tuple[str, int]) -> InstanceState:
        template = self.ec2.describe_launch_templates(template_ids=[version[0]])[0]
        data = template.get_version(version[1])
        tags = group.get_propagated_tags()
        tags[ASG_NAME_TAG] = group.name
        tags.update(group.instance_tags)
        subnet_id = group.vpc_zone_identifier.split(",")[0] if group.vpc_zone_identifier else None
        reservation = self.ec2.run_instances(
            data.image_id,
            1,
            None,
            [],
            instance_type=data.instance_type,
            tags={"instance": tags},
            placement=random.choice(group.availability_zones),
            launch_template={"LaunchTemplateId": version[0], "Version": str(version[1])},
            is_instance_type_default=False,
            subnet_id=subnet_id,
        )
        instance = reservation.instances[0]
        instance.autoscaling_group = group  # type: ignore[attr-defined]
        model_state.put(instance, "template_version", version)
        state = InstanceState(instance, lifecycle_state="Pending", health_status="Healthy")
        group.instance_states.append(state)
        return state

    def terminate(self, group: FakeAutoScalingGroup, instance_ids: list[str]) -> None:
        if not instance_ids:
            return
        group.instance_states = [
            s for s in group.instance_states if s.instance.id not in instance_ids
        ]
        self.ec2.terminate_instances(instance_ids)

    def state_of(self, group: FakeAutoScalingGroup, instance_id: str) -> InstanceState | None:
        return next((s for s in group.instance_states if s.instance.id == instance_id), None)

    # -- the refresh ----------------------------------------------------------------

    def start(self, group: FakeAutoScalingGroup, params: dict[str, Any]) -> Refresh:
        if any(r.status in ACTIVE for r in _refreshes(group)):
            raise InstanceRefreshInProgressError(
                "An Instance Refresh is already in progress and blocks the execution of "
                "this Instance Refresh."
            )
        preferences = dict(params.get("Preferences") or {})
        desired_raw = (params.get("DesiredConfiguration") or {}).get("LaunchTemplate")
        if preferences.get("AutoRollback") and not desired_raw:
            raise RefreshValidationError(
                "AutoRollback requires a desired configuration in the instance refresh."
            )
        if preferences.get("AutoRollback") and group.launch_template_version in (
            "$Latest",
            "$Default",
        ):
            raise RefreshValidationError(
                "AutoRollback is not supported when the Auto Scaling group uses the launch "
                "template's $Latest or $Default version."
            )
        previous = self.group_version(group)
        desired = None
        if desired_raw:
            template_id = desired_raw.get("LaunchTemplateId")
            if not template_id:
                name = desired_raw["LaunchTemplateName"]
                template_id = self.ec2.describe_launch_templates(template_names=[name])[0].id
            desired = self.resolve(template_id, desired_raw.get("Version"))
        target = desired or previous
        preferences.setdefault("MinHealthyPercentage", 90)
        preferences.setdefault("SkipMatching", False)
        preferences.setdefault("AutoRollback", False)
        if preferences.get("CheckpointPercentages"):
            preferences.setdefault("CheckpointDelay", DEFAULT_CHECKPOINT_DELAY)
        to_update = []
        for state in group.instance_states:
            running = _instance_version(state.instance) or previous
            if preferences["SkipMatching"] and running == target:
                continue
            to_update.append(state.instance.id)
        refresh = Refresh(
            id=str(uuid.uuid4()),
            group=group.name,
            started=self.runtime.now(),
            preferences=preferences,
            desired=desired,
            previous=previous,
            to_update=to_update,
            total=len(to_update),
        )
        _refreshes(group).insert(0, refresh)
        return refresh

    def advance_all(self) -> None:
        now = self.runtime.now()
        for group in list(self.backend.autoscaling_groups.values()):
            for refresh in _refreshes(group):
                if refresh.status in ACTIVE:
                    for _ in range(MAX_STEPS_PER_REQUEST):
                        if refresh.status not in ACTIVE or not self.step(group, refresh, now):
                            break

    def batch_size(self, group: FakeAutoScalingGroup, refresh: Refresh) -> int:
        healthy = int(refresh.preferences.get("MinHealthyPercentage", 90))
        capacity = max(1, int(group.desired_capacity or len(group.instance_states) or 1))
        return max(1, capacity * (100 - healthy) // 100)

    def finish(self, refresh: Refresh, status: str, reason: str, now: float) -> None:
        refresh.status = status
        refresh.reason = reason
        refresh.ended = now

    def step(self, group: FakeAutoScalingGroup, refresh: Refresh, now: float) -> bool:
        """One transition that is due; False when nothing is due now."""
        if refresh.status == "Pending":
            refresh.status = "InProgress"
            return True
        # Replacements whose warm-up has ended.
        ready = [i for i, until in refresh.warming.items() if until <= now]
        if ready:
            rolling_back = refresh.status == "RollbackInProgress"
            for instance_id in ready:
                del refresh.warming[instance_id]
                state = self.state_of(group, instance_id)
                version = _instance_version(state.instance) if state is not None else None
                if state is not None and version is not None and self.is_broken(version):
                    state.health_status = "Unhealthy"
                    if refresh.status == "InProgress":
                        self.fail(group, refresh, instance_id, now)
                    continue
                if state is not None:
                    state.lifecycle_state = "InService"
                if rolling_back:
                    refresh.rolled_back += 1
                elif refresh.status in ("InProgress", "Cancelling"):
                    refresh.replaced += 1
            return True
        if refresh.warming:
            return False
        if refresh.status == "Cancelling":
            self.finish(refresh, "Cancelled", "The instance refresh was cancelled.", now)
            return True
        if refresh.status == "RollbackInProgress":
            if refresh.to_update:
                self.replace_batch(group, refresh, refresh.previous, now)
                return True
            self.finish(
                refresh,
                "RollbackSuccessful",
                refresh.reason or "The instance refresh was rolled back.",
                now,
            )
            return True
        # InProgress
        if refresh.checkpoint_until is not None:
            if now < refresh.checkpoint_until:
                return False
            refresh.checkpoint_until = None
            refresh.reason = ""
            return True
        checkpoint = self.checkpoint_due(refresh) if refresh.to_update else None
        if checkpoint is not None:
            refresh.checkpoints_done.append(checkpoint)
            delay = float(refresh.preferences.get("CheckpointDelay", DEFAULT_CHECKPOINT_DELAY))
            wait = min(delay, self.runtime.timing.asg_checkpoint_delay)
            refresh.checkpoint_until = now + self.runtime.delay(wait)
            refresh.reason = (
                f"Waiting at checkpoint {checkpoint}% ({refresh.percentage}% complete) for "
                f"the checkpoint delay of {int(delay)} seconds."
            )
            return True
        if refresh.to_update:
            self.replace_batch(group, refresh, refresh.desired or refresh.previous, now)
            return True
        if refresh.desired is not None:
            _template_id, number = refresh.desired
            group.launch_template_version = str(number)
            group.provided_launch_template_version = str(number)
        self.finish(refresh, "Successful", "", now)
        return True

    def checkpoint_due(self, refresh: Refresh) -> int | None:
        for checkpoint in refresh.preferences.get("CheckpointPercentages") or []:
            point = int(checkpoint)
            if point >= 100 or point in refresh.checkpoints_done:
                continue
            if refresh.percentage >= point:
                return point
        return None

    def replace_batch(
        self,
        group: FakeAutoScalingGroup,
        refresh: Refresh,
        version: tuple[str, int] | None,
        now: float,
    ) -> None:
        size = self.batch_size(group, refresh)
        batch, refresh.to_update = refresh.to_update[:size], refresh.to_update[size:]
        self.terminate(group, batch)
        if version is None:
            return
        warmup = self.runtime.delay(self.runtime.timing.asg_instance_warmup)
        for _ in batch:
            state = self.launch(group, version)
            refresh.warming[state.instance.id] = now + warmup
            if refresh.status == "InProgress":
                refresh.launched.append(state.instance.id)

    def fail(
        self, group: FakeAutoScalingGroup, refresh: Refresh, instance_id: str, now: float
    ) -> None:
        reason = (
            f"Instance refresh failed: instance {instance_id} launched from the desired "
            "configuration failed its health checks."
        )
        # The replacements still warming up are stopped where they are.
        still = list(refresh.warming)
        refresh.warming.clear()
        if refresh.preferences.get("AutoRollback"):
            refresh.status = "RollbackInProgress"
            refresh.reason = reason + " Rolling back to the previous configuration."
            refresh.to_update = [i for i in refresh.launched if self.state_of(group, i) is not None]
            refresh.replaced = 0
            return
        # Without rollback the group replaces the unhealthy instances from its own
        # configuration, which the refresh did not change.
        unhealthy = [instance_id, *still]
        self.terminate(group, unhealthy)
        previous = refresh.previous
        if previous is not None:
            for _ in unhealthy:
                state = self.launch(group, previous)
                state.lifecycle_state = "InService"
        self.finish(refresh, "Failed", reason, now)

    def cancel(self, group: FakeAutoScalingGroup) -> Refresh:
        refresh = self.active(group)
        refresh.status = "Cancelling"
        refresh.reason = "The instance refresh is being cancelled."
        refresh.checkpoint_until = None
        return refresh

    def rollback(self, group: FakeAutoScalingGroup) -> Refresh:
        refresh = self.active(group)
        if refresh.desired is None or refresh.status not in ("Pending", "InProgress", "Baking"):
            raise RefreshValidationError(
                "The instance refresh cannot be rolled back: it has no desired configuration "
                "or it is not in progress."
            )
        refresh.status = "RollbackInProgress"
        refresh.reason = "Rollback requested by the user."
        refresh.checkpoint_until = None
        refresh.to_update = [i for i in [*refresh.launched] if self.state_of(group, i) is not None]
        refresh.replaced = 0
        return refresh

    def active(self, group: FakeAutoScalingGroup) -> Refresh:
        for refresh in _refreshes(group):
            if refresh.status in ACTIVE:
                return refresh
        raise ActiveInstanceRefreshNotFoundError(
            f"No in progress or pending Instance Refresh found for Auto Scaling group {group.name}"
        )


def _group(backend: AutoScalingBackend, name: str) -> FakeAutoScalingGroup:
    group = backend.autoscaling_groups.get(name)
    if group is None:
        raise RefreshValidationError(f"AutoScalingGroup name not found - {name}")
    return group


def install(runtime: Runtime) -> None:
    def wrap_call_action(original: Any) -> Any:
        def call_action(self: AutoScalingResponse) -> Any:
            with runtime.lock:
                Refresher(runtime, self.autoscaling_backend).advance_all()
                return original(self)

        return call_action

    def start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
        backend = self.autoscaling_backend
        group = _group(backend, self._get_param("AutoScalingGroupName"))
        params = {
            "Preferences": self._get_param("Preferences"),
            "DesiredConfiguration": self._get_param("DesiredConfiguration"),
        }
        refresh = Refresher(runtime, backend).start(group, params)
        return ActionResult({"InstanceRefreshId": refresh.id})

    def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
        group = _group(self.autoscaling_backend, self._get_param("AutoScalingGroupName"))
        wanted = set(self._get_param("InstanceRefreshIds") or [])
        found = [r.describe() for r in _refreshes(group) if not wanted or r.id in wanted]
        return ActionResult({"InstanceRefreshes": found})

    def cancel_instance_refresh(self: AutoScalingResponse) -> ActionResult:
        backend = self.autoscaling_backend
        group = _group(backend, self._get_param("AutoScalingGroupName"))
        refresh = Refresher(runtime, backend).cancel(group)
        return ActionResult({"InstanceRefreshId": refresh.id})

    def rollback_instance_refresh(self: AutoScalingResponse) -> ActionResult:
        backend = self.autoscaling_backend
        group = _group(backend, self._get_param("AutoScalingGroupName"))
        refresh = Refresher(runtime, backend).rollback(group)
        return ActionResult({"InstanceRefreshId": refresh.id})

    patch(AutoScalingResponse, "call_action", wrap_call_action)
    add(AutoScalingResponse, "start_instance_refresh", start_instance_refresh)
    add(AutoScalingResponse, "describe_instance_refreshes", describe_instance_refreshes)
    add(AutoScalingResponse, "cancel_instance_refresh", cancel_instance_refresh)
    add(AutoScalingResponse, "rollback_instance_refresh", rollback_instance_refresh)
