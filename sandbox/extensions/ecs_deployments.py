"""ECS rolling deployments for services using the ECS deployment controller.

moto gives a service one synthetic deployment and never starts tasks for it. Here every
service owns real tasks (`startedBy` = deployment id, `group` = `service:NAME`) and a
scheduler that plays the rolling update out in steps of `timing.ecs_task_step`:

1. tasks from an earlier step that were told to stop are `STOPPED`;
2. `RUNNING` tasks pass their health check (`healthStatus` `HEALTHY`);
3. `PENDING` tasks reach `RUNNING`, or fail if their image is tagged `broken` (named by
   that tag, or pinned by the digest the tag points to);
4. the circuit breaker trips when the primary deployment's `failedTasks` reaches its
   threshold, and starts a rollback deployment when the breaker has `rollback`;
5. new tasks start within `maximumPercent`; old tasks stop while at least
   `minimumHealthyPercent` of the desired count stays healthy;
6. the primary deployment completes once it alone runs the desired number of healthy tasks.

Steps are evaluated lazily: every ECS request first plays out the steps that are due,
stamped with the time at which each step was due. Nothing runs between requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ecr.models import ecr_backends
from moto.ecs.models import (
    EC2ContainerServiceBackend,
    Service,
    Task,
    TaskDefinition,
    ecs_backends,
)
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random

from sandbox.extensions import model_state
from sandbox.extensions.patching import add, patch
from sandbox.extensions.runtime import Runtime

BROKEN_IMAGE_SUFFIX = ":broken"
ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
MAX_EVENTS = 100
MAX_STOPPED_TASKS_KEPT = 50
MAX_STEPS_PER_REQUEST = 100

DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def _timestamp(at: float) -> datetime:
    # moto serializes naive datetimes as UTC.
    return datetime.fromtimestamp(at, tz=UTC).replace(tzinfo=None)


def _new_deployment_id() -> str:
    return f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"


@dataclass
class Deployment:
    """One entry of a service's `deployments[]`; attribute names follow the API shape."""

    id: str
    status: str
    task_definition: str
    desired_count: int
    created_at: datetime
    updated_at: datetime
    rollout_state: str
    rollout_state_reason: str
    launch_type: str | None = None
    platform_version: str | None = None
    platform_family: str | None = None
    network_configuration: dict[str, Any] | None = None
    pending_count: int = 0
    running_count: int = 0
    failed_tasks: int = 0


class ServiceTask(Task):
    """A task started by a service's scheduler.

    moto's Task walks its status through a state machine each time it is described; a
    service task's status is set by the scheduler alone. The annotated attributes are
    Task fields of the API that moto's Task does not have.
    """

    service: Service
    health_status: str
    created_at: datetime
    started_at: datetime | None
    stopping_at: datetime | None
    stopped_at: datetime | None
    execution_stopped_at: datetime | None
    pull_started_at: datetime | None
    pull_stopped_at: datetime | None
    connectivity: str | None
    connectivity_at: datetime | None
    stop_code: str | None
    cpu: str | None
    memory: str | None
    version: int
    platform_family: str | None
    availability_zone: str | None

    @property
    def status(self) -> str:
        return str(self._status)

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    def advance(self) -> None:
        pass


@dataclass
class ServiceState:
    """The scheduler's bookkeeping for one service, kept on the moto Service object."""

    tasks: list[ServiceTask] = field(default_factory=list)
    next_step_at: float | None = None
    # (deployment id, task definition ARN) of the last deployment that completed: the
    # target of a circuit-breaker rollback.
    last_completed: tuple[str, str] | None = None
    steady: bool = False


def _state(service: Service) -> ServiceState:
    return model_state.get_or_create(service, "state", ServiceState)


def _is_scheduled(service: Service) -> bool:
    return model_state.has(service, "state")


def _deployments(service: Service) -> list[Deployment]:
    return cast(list[Deployment], service.deployments)


def _set_deployments(service: Service, deployments: list[Deployment]) -> None:
    # moto types the list as dicts; the serializer reads Deployment objects the same way.
    model_state.set_api_field(service, "deployments", deployments)


def _configuration(service: Service) -> dict[str, Any]:
    configuration = model_state.api_field(service, "deployment_configuration")
    return configuration or DEFAULT_DEPLOYMENT_CONFIGURATION


def _circuit_breaker(service: Service) -> tuple[bool, bool]:
    breaker = _configuration(service).get("deploymentCircuitBreaker") or {}
    return bool(breaker.get("enable")), bool(breaker.get("rollback"))


def failure_threshold(desired_count: int) -> int:
    """Failed tasks that trip the circuit breaker: half the desired count, within [3, 200]."""
    return min(max(math.ceil(0.5 * desired_count), 3), 200)


def _tags_of_digest(backend: EC2ContainerServiceBackend, image: str) -> list[str]:
    """The ECR tags of an image pinned by digest (`…/api@sha256:…`), from the ECR backend
    of the same account and region."""
    name, _, digest = image.rpartition("@")
    repository = name.rsplit("/", 1)[-1]
    registry = ecr_backends[backend.account_id][backend.region_name]
    found = registry.repositories.get(repository)
    if found is None:
        return []
    return [
        tag
        for entry in found.images
        if entry.get_image_digest() == digest
        for tag in entry.image_tags
    ]


def _is_broken(backend: EC2ContainerServiceBackend, task: ServiceTask) -> bool:
    definition: TaskDefinition = backend.describe_task_definition(task.task_definition_arn)
    for container in definition.container_definitions:
        if not container.get("essential", True):
            continue
        image = str(container.get("image", ""))
        if image.endswith(BROKEN_IMAGE_SUFFIX):
            return True
        if "@sha256:" in image and BROKEN_IMAGE_SUFFIX[1:] in _tags_of_digest(backend, image):
            return True
    return False


class Scheduler:
    """Plays out rolling deployments for the services of one ECS backend."""

    def __init__(self, runtime: Runtime, backend: EC2ContainerServiceBackend) -> None:
        self.runtime = runtime
        self.backend = backend

    # -- entry points ---------------------------------------------------------------

    def advance_all(self) -> None:
        now = self.runtime.now()
        for service in list(self.backend.services.values()):
            if _is_scheduled(service) and service.status == "ACTIVE":
                self.advance(service, now)

    def advance(self, service: Service, now: float) -> None:
        state = _state(service)
        steps = 0
        while state.next_step_at is not None and state.next_step_at <= now:
            at = state.next_step_at
            busy = self._step(service, state, at)
            steps += 1
            if not busy:
                state.next_step_at = None
                break
            delay = self.runtime.delay(self.runtime.timing.ecs_task_step)
            state.next_step_at = at + delay if steps < MAX_STEPS_PER_REQUEST else now + delay
            if steps >= MAX_STEPS_PER_REQUEST:
                break
        if steps:
            # Every other change of tasks refreshes the counts itself: a service with nothing
            # due costs nothing here (each ECS call advances every service of the backend).
            self._refresh_counts(service)

    def start_service(self, service: Service, configuration: dict[str, Any] | None) -> None:
        """Give a service created by moto a real first deployment."""
        now = self.runtime.now()
        model_state.set_api_field(
            service, "deployment_configuration", _merge_configuration(None, configuration)
        )
        model_state.set_api_field(service, "created_at", _timestamp(now))
        service.events = []
        _set_deployments(service, [])
        state = _state(service)
        if service.deployment_controller.get("type", "ECS") != "ECS" or not service.task_definition:
            return
        self._new_deployment(service, service.task_definition, now)
        state.next_step_at = now
        self._refresh_counts(service)

    def update_service(
        self,
        service: Service,
        task_definition_arn: str | None,
        desired_count: int | None,
        force_new_deployment: bool,
        configuration: dict[str, Any] | None,
    ) -> None:
        now = self.runtime.now()
        state = _state(service)
        if configuration:
            model_state.set_api_field(
                service,
                "deployment_configuration",
                _merge_configuration(_configuration(service), configuration),
            )
        if desired_count is not None and desired_count != service.desired_count:
            service.desired_count = desired_count
            state.steady = False
            self._wake(state, now)
        target = task_definition_arn or service.task_definition
        if target and (target != service.task_definition or force_new_deployment):
            self._new_deployment(service, target, now)
            self._wake(state, now)
        primary = self._primary(service)
        if primary is not None:
            primary.desired_count = service.desired_count
        self._refresh_counts(service)

    def stop_service_tasks(self, service: Service, reason: str) -> None:
        now = self.runtime.now()
        state = _state(service)
        for task in state.tasks:
            if task.last_status != "STOPPED":
                self._stop_now(task, now, "ServiceSchedulerInitiated", reason)
        state.next_step_at = None
        self._refresh_counts(service)

    def task_stopped_by_user(self, task: ServiceTask) -> None:
        now = self.runtime.now()
        task.stop_code = "UserInitiated"
        task.stopping_at = task.stopped_at = task.execution_stopped_at = _timestamp(now)
        task.version += 1
        for container in task.containers:
            container.last_status = "STOPPED"
        self._release_network_interface(task)
        state = _state(task.service)
        state.steady = False
        self._wake(state, now)
        self._refresh_counts(task.service)

    # -- one step ---------------------------------------------------------------------

    def _step(self, service: Service, state: ServiceState, at: float) -> bool:
        """Play one scheduler step at time `at`; return whether more steps are needed."""
        self._finish_stopping(service, state, at)
        self._pass_health_checks(state)
        self._settle_pending(service, state, at)
        self._check_circuit_breaker(service, state, at)
        self._schedule(service, state, at)
        self._complete(service, state, at)
        self._refresh_counts(service)
        return self._busy(service, state)

    def _finish_stopping(self, service: Service, state: ServiceState, at: float) -> None:
        stopping = [t for t in state.tasks if t.last_status == "DEACTIVATING"]
        for task in stopping:
            self._mark_stopped(task, at)
        if stopping:
            ids = " ".join(f"(task {t.id})" for t in stopping)
            self._event(service, at, f"has stopped {len(stopping)} running tasks: {ids}.")
        self._forget_old_stopped_tasks(state)

    def _pass_health_checks(self, state: ServiceState) -> None:
        for task in state.tasks:
            if task.last_status == "RUNNING" and task.health_status == "UNKNOWN":
                task.health_status = "HEALTHY"
                for container in task.containers:
                    container.health_status = "HEALTHY"

    def _settle_pending(self, service: Service, state: ServiceState, at: float) -> None:
        for task in [t for t in state.tasks if t.last_status == "PENDING"]:
            deployment = self._deployment(service, task.started_by)
            if _is_broken(self.backend, task):
                task.pull_started_at = task.pull_stopped_at = _timestamp(at)
                self._stop_now(task, at, "EssentialContainerExited", ESSENTIAL_CONTAINER_EXITED)
                for container in task.containers:
                    container.exitCode = 1
                if deployment is not None:
                    deployment.failed_tasks += 1
                    deployment.updated_at = _timestamp(at)
                continue
            task.last_status = "RUNNING"
            task.connectivity = "CONNECTED"
            task.connectivity_at = task.pull_started_at = task.pull_stopped_at = _timestamp(at)
            task.started_at = _timestamp(at)
            for container in task.containers:
                container.last_status = "RUNNING"
                container.health_status = "UNKNOWN"
            if deployment is not None:
                deployment.failed_tasks = 0

    def _check_circuit_breaker(self, service: Service, state: ServiceState, at: float) -> None:
        primary = self._primary(service)
        enabled, rollback = _circuit_breaker(service)
        if primary is None or primary.rollout_state != "IN_PROGRESS" or not enabled:
            return
        if primary.failed_tasks < failure_threshold(service.desired_count):
            return
        primary.rollout_state = "FAILED"
        primary.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start."
        primary.updated_at = _timestamp(at)
        self._event(
            service, at, f"(deployment {primary.id}) deployment failed: tasks failed to start."
        )
        for task in state.tasks:
            if task.started_by == primary.id and task.last_status == "PENDING":
                self._stop_now(task, at, "ServiceSchedulerInitiated", self._scaling_reason(primary))
        if rollback and state.last_completed is not None:
            target_id, target_definition = state.last_completed
            self._new_deployment(
                service,
                target_definition,
                at,
                reason=f"ECS deployment circuit breaker: rolling back to deploymentId {target_id}.",
            )
            self._event(service, at, f"rolling back to deployment {target_id}.")

    def _schedule(self, service: Service, state: ServiceState, at: float) -> None:
        primary = self._primary(service)
        if primary is None or primary.rollout_state == "FAILED":
            return
        config = _configuration(service)
        desired = int(service.desired_count)
        maximum = math.floor(desired * int(config.get("maximumPercent", 200)) / 100)
        minimum_healthy = math.ceil(desired * int(config.get("minimumHealthyPercent", 100)) / 100)

        in_flight = [t for t in state.tasks if t.last_status != "STOPPED"]
        primary_live = [
            t
            for t in in_flight
            if t.started_by == primary.id and t.last_status in ("PENDING", "RUNNING")
        ]
        to_start = min(desired - len(primary_live), maximum - len(in_flight))
        if to_start > 0:
            started = [self._start_task(service, primary, at) for _ in range(to_start)]
            ids = " ".join(f"(task {t.id})" for t in started)
            self._event(service, at, f"has started {len(started)} tasks: {ids}.")
        elif len(primary_live) > desired:
            # Scale in: pending tasks first, then the newest running ones.
            excess = sorted(
                primary_live, key=lambda t: (t.last_status != "PENDING", -t.created_at.timestamp())
            )[: len(primary_live) - desired]
            self._begin_stopping(service, primary, excess, at)

        old_pending = [
            t for t in in_flight if t.started_by != primary.id and t.last_status == "PENDING"
        ]
        for task in old_pending:
            self._stop_now(task, at, "ServiceSchedulerInitiated", self._scaling_reason(primary))
        healthy = [
            t
            for t in state.tasks
            if t.last_status == "RUNNING"
            and t.health_status == "HEALTHY"
            and t.desired_status == "RUNNING"
        ]
        old_running = [
            t for t in state.tasks if t.started_by != primary.id and t.last_status == "RUNNING"
        ]
        stoppable = min(len(old_running), len(healthy) - minimum_healthy)
        if stoppable > 0:
            oldest_first = sorted(old_running, key=lambda t: t.created_at)
            self._begin_stopping(service, primary, oldest_first[:stoppable], at)

    def _complete(self, service: Service, state: ServiceState, at: float) -> None:
        primary = self._primary(service)
        if primary is None or primary.rollout_state == "FAILED":
            return
        others_left = any(
            t.started_by != primary.id and t.last_status != "STOPPED" for t in state.tasks
        )
        primary_tasks = [t for t in state.tasks if t.started_by == primary.id]
        healthy = sum(
            1
            for t in primary_tasks
            if t.last_status == "RUNNING"
            and t.health_status == "HEALTHY"
            and t.desired_status == "RUNNING"
        )
        unsettled = any(t.last_status in ("PENDING", "DEACTIVATING") for t in primary_tasks)
        if others_left or unsettled or healthy != service.desired_count:
            return
        if primary.rollout_state == "IN_PROGRESS":
            primary.rollout_state = "COMPLETED"
            primary.rollout_state_reason = f"ECS deployment {primary.id} completed."
            primary.updated_at = _timestamp(at)
            _set_deployments(service, [primary])
            state.last_completed = (primary.id, primary.task_definition)
            self._event(service, at, f"(deployment {primary.id}) deployment completed.")
        if not state.steady:
            state.steady = True
            self._event(service, at, "has reached a steady state.")

    def _busy(self, service: Service, state: ServiceState) -> bool:
        if any(
            t.last_status in ("PENDING", "DEACTIVATING")
            or (t.last_status == "RUNNING" and t.health_status == "UNKNOWN")
            for t in state.tasks
        ):
            return True
        primary = self._primary(service)
        if primary is None or primary.rollout_state == "FAILED":
            return False
        return not (primary.rollout_state == "COMPLETED" and state.steady)

    # -- helpers ---------------------------------------------------------------------

    def _primary(self, service: Service) -> Deployment | None:
        deployments = _deployments(service)
        return deployments[0] if deployments else None

    def _deployment(self, service: Service, deployment_id: str) -> Deployment | None:
        return next((d for d in _deployments(service) if d.id == deployment_id), None)

    def _wake(self, state: ServiceState, at: float) -> None:
        if state.next_step_at is None:
            state.next_step_at = at

    def _event(self, service: Service, at: float, message: str) -> None:
        event = {
            "id": str(mock_random.uuid4()),
            "createdAt": _timestamp(at),
            "message": f"(service {service.name}) {message}",
        }
        service.events.insert(0, event)
        del service.events[MAX_EVENTS:]

    def _new_deployment(
        self, service: Service, task_definition_arn: str, at: float, reason: str | None = None
    ) -> Deployment:
        deployment_id = _new_deployment_id()
        deployment = Deployment(
            id=deployment_id,
            status="PRIMARY",
            task_definition=task_definition_arn,
            desired_count=int(service.desired_count),
            created_at=_timestamp(at),
            updated_at=_timestamp(at),
            rollout_state="IN_PROGRESS",
            rollout_state_reason=reason or f"ECS deployment {deployment_id} in progress.",
            launch_type=service.launch_type,
            platform_version=service.platform_version
            or ("LATEST" if service.launch_type == "FARGATE" else None),
            platform_family="Linux" if service.launch_type == "FARGATE" else None,
            network_configuration=service.network_configuration or None,
        )
        for older in _deployments(service):
            older.status = "ACTIVE"
            older.updated_at = _timestamp(at)
        _set_deployments(service, [deployment, *_deployments(service)])
        service.task_definition = task_definition_arn
        _state(service).steady = False
        return deployment

    def _start_task(self, service: Service, deployment: Deployment, at: float) -> ServiceTask:
        cluster = self.backend._get_cluster(service.cluster_name)
        definition = self.backend.describe_task_definition(deployment.task_definition)
        task = ServiceTask(
            cluster=cluster,
            task_definition=definition,
            container_instance_arn=None,
            resource_requirements=None,
            backend=self.backend,
            group=f"service:{service.name}",
            launch_type=service.launch_type or "",
            started_by=deployment.id,
            networking_configuration=service.network_configuration or None,
            platform_version=deployment.platform_version,
        )
        task.service = service
        task.last_status = "PENDING"
        task.desired_status = "RUNNING"
        task.health_status = "UNKNOWN"
        task.created_at = _timestamp(at)
        task.started_at = task.stopping_at = task.stopped_at = task.execution_stopped_at = None
        task.pull_started_at = task.pull_stopped_at = task.connectivity_at = None
        task.connectivity = None
        task.stop_code = None
        model_state.set_api_field(task, "stopped_reason", None)  # moto's default is ""
        task.cpu = definition.cpu
        task.memory = definition.memory
        task.version = 1
        task.platform_family = deployment.platform_family
        task.availability_zone = self._availability_zone(service)
        for container in task.containers:
            container.health_status = "UNKNOWN"
        self.backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        _state(service).tasks.append(task)
        return task

    def _availability_zone(self, service: Service) -> str | None:
        subnets = (
            (service.network_configuration or {}).get("awsvpcConfiguration", {}).get("subnets")
        )
        if not subnets:
            return None
        ec2 = ec2_backends[self.backend.account_id][self.backend.region_name]
        try:
            zone: str = ec2.get_subnet(subnets[0]).availability_zone
        except Exception:  # an unknown subnet was already rejected by CreateService
            return None
        return zone

    def _scaling_reason(self, deployment: Deployment) -> str:
        return f"Scaling activity initiated by (deployment {deployment.id})"

    def _begin_stopping(
        self, service: Service, primary: Deployment, tasks: list[ServiceTask], at: float
    ) -> None:
        if not tasks:
            return
        for task in tasks:
            task.last_status = "DEACTIVATING"
            task.desired_status = "STOPPED"
            task.stopping_at = _timestamp(at)
            task.stop_code = "ServiceSchedulerInitiated"
            task.stopped_reason = self._scaling_reason(primary)
            task.version += 1
        if service.load_balancers:
            self._event(service, at, f"has begun draining connections on {len(tasks)} tasks.")

    def _stop_now(self, task: ServiceTask, at: float, stop_code: str, reason: str) -> None:
        task.desired_status = "STOPPED"
        task.stopping_at = _timestamp(at)
        task.stop_code = stop_code
        task.stopped_reason = reason
        self._mark_stopped(task, at)

    def _mark_stopped(self, task: ServiceTask, at: float) -> None:
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_at = task.execution_stopped_at = _timestamp(at)
        task.version += 1
        for container in task.containers:
            container.last_status = "STOPPED"
        self._release_network_interface(task)

    def _release_network_interface(self, task: ServiceTask) -> None:
        ec2 = ec2_backends[self.backend.account_id][self.backend.region_name]
        for attachment in cast(list[dict[str, Any]], task.attachments):
            details = {d["name"]: d["value"] for d in attachment.get("details", [])}
            eni_id = details.get("networkInterfaceId")
            if eni_id and eni_id in ec2.enis:
                ec2.enis[eni_id].status = "available"
                ec2.delete_network_interface(eni_id)
            attachment["status"] = "DELETED"

    def _forget_old_stopped_tasks(self, state: ServiceState) -> None:
        stopped = [t for t in state.tasks if t.last_status == "STOPPED"]
        for task in stopped[: max(0, len(stopped) - MAX_STOPPED_TASKS_KEPT)]:
            state.tasks.remove(task)
            self.backend.tasks.get(task.cluster_name, {}).pop(task.task_arn, None)

    def _refresh_counts(self, service: Service) -> None:
        state = _state(service)
        for deployment in _deployments(service):
            mine = [t for t in state.tasks if t.started_by == deployment.id]
            deployment.running_count = sum(1 for t in mine if t.last_status == "RUNNING")
            deployment.pending_count = sum(1 for t in mine if t.last_status == "PENDING")
            if deployment.status != "PRIMARY":
                deployment.desired_count = deployment.running_count + deployment.pending_count
        service.running_count = sum(1 for t in state.tasks if t.last_status == "RUNNING")
        service.pending_count = sum(1 for t in state.tasks if t.last_status == "PENDING")
        cluster = self.backend.clusters.get(service.cluster_name)
        if cluster is not None:
            statuses = [
                t.last_status if isinstance(t, ServiceTask) else t._status
                for t in self.backend.tasks.get(cluster.name, {}).values()
            ]
            cluster.running_tasks_count = statuses.count("RUNNING")
            cluster.pending_tasks_count = statuses.count("PENDING")


def _merge_configuration(
    current: dict[str, Any] | None, update: dict[str, Any] | None
) -> dict[str, Any]:
    merged: dict[str, Any] = {
        **DEFAULT_DEPLOYMENT_CONFIGURATION,
        "deploymentCircuitBreaker": dict(
            DEFAULT_DEPLOYMENT_CONFIGURATION["deploymentCircuitBreaker"]
        ),
    }
    for source in (current or {}, update or {}):
        for key, value in source.items():
            if key == "deploymentCircuitBreaker" and isinstance(value, dict):
                merged[key] = {**merged[key], **value}
            elif value is not None:
                merged[key] = value
    return merged


def scheduler_for(runtime: Runtime, account_id: str, region: str) -> Scheduler:
    return Scheduler(runtime, ecs_backends[account_id][region])


def settle(runtime: Runtime, account_id: str, region: str) -> None:
    """Play every service's pending steps out at once (used while seeding)."""
    with runtime.lock, runtime.instantly():
        scheduler = scheduler_for(runtime, account_id, region)
        for _ in range(MAX_STEPS_PER_REQUEST):
            scheduler.advance_all()
            if all(
                _state(s).next_step_at is None
                for s in scheduler.backend.services.values()
                if _is_scheduled(s)
            ):
                return


# -- patches -----------------------------------------------------------------------------


def install(runtime: Runtime) -> None:
    def wrap_call_action(original: Any) -> Any:
        def call_action(self: EC2ContainerServiceResponse) -> Any:
            with runtime.lock:
                Scheduler(runtime, self.ecs_backend).advance_all()
                return original(self)

        return call_action

    def wrap_create_service(original: Any) -> Any:
        def create_service(self: EC2ContainerServiceResponse) -> Any:
            result = original(self)
            service = result.result["service"]
            Scheduler(runtime, self.ecs_backend).start_service(
                service, self._get_param("deploymentConfiguration")
            )
            return result

        return create_service

    def update_service(self: EC2ContainerServiceBackend, properties: dict[str, Any]) -> Service:
        properties = dict(properties)
        cluster = properties.pop("cluster", "default")
        service = self._get_service(cluster, properties.pop("service").split("/")[-1])
        definition = properties.pop("task_definition", None)
        definition_arn = self.describe_task_definition(definition).arn if definition else None
        desired = properties.pop("desired_count", None)
        force = bool(properties.pop("force_new_deployment", False))
        configuration = properties.pop("deployment_configuration", None)
        for name, value in properties.items():
            if value is not None:
                setattr(service, name, value)
        if not _is_scheduled(service):
            Scheduler(runtime, self).start_service(service, None)
        Scheduler(runtime, self).update_service(
            service,
            definition_arn,
            None if desired is None else int(desired),
            force,
            configuration,
        )
        return service

    def wrap_delete_service(original: Any) -> Any:
        def delete_service(
            self: EC2ContainerServiceBackend, cluster_name: str, service_name: str, force: bool
        ) -> Service:
            service: Service = original(self, cluster_name, service_name, force)
            if _is_scheduled(service):
                deployments = _deployments(service)
                reason = (
                    f"Scaling activity initiated by (deployment {deployments[0].id})"
                    if deployments
                    else "Service deleted"
                )
                Scheduler(runtime, self).stop_service_tasks(service, reason)
            return service

        return delete_service

    def wrap_stop_task(original: Any) -> Any:
        def stop_task(
            self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str
        ) -> Task:
            task: Task = original(self, cluster_str, task_str, reason)
            if isinstance(task, ServiceTask):
                Scheduler(runtime, self).task_stopped_by_user(task)
            return task

        return stop_task

    def list_tasks(self: EC2ContainerServiceResponse) -> ActionResult:
        service_name = self._get_param("serviceName")
        tasks = self.ecs_backend.list_tasks(
            self._get_param("cluster", "default"),
            self._get_param("containerInstance"),
            self._get_param("family"),
            self._get_param("startedBy"),
            None,
            self._get_param("desiredStatus") or "RUNNING",
        )
        if service_name:
            group = f"service:{service_name.split('/')[-1]}"
            tasks = [t for t in tasks if t.group == group]
        return ActionResult({"taskArns": [t.task_arn for t in tasks]})

    # moto's awsvpc tasks read the ENI's private DNS name, which moto only sets in VPCs
    # with DNS hostnames enabled.
    add(NetworkInterface, "private_dns_name", None)
    patch(EC2ContainerServiceResponse, "call_action", wrap_call_action)
    patch(EC2ContainerServiceResponse, "create_service", wrap_create_service)
    patch(EC2ContainerServiceResponse, "list_tasks", lambda _original: list_tasks)
    patch(EC2ContainerServiceBackend, "update_service", lambda _original: update_service)
    patch(EC2ContainerServiceBackend, "delete_service", wrap_delete_service)
    patch(EC2ContainerServiceBackend, "stop_task", wrap_stop_task)
