"""Watching an ECS rolling deployment until it ends, and saying what happened.

The watcher polls the service through the ECS port. It reports each change of the rollout
(counts, rollout state, the circuit breaker tripping, ECS rolling back) and, while nothing
changes, a line at a steady interval, so that a thread never goes quiet on a long rollout.
It knows nothing of chat or jobs: it calls `report(text)`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from bot.config import AwsScope, EcsTarget
from bot.grammar import format_duration
from bot.polling import Polling
from bot.ports.ecs import (
    EcsDeployment,
    EcsPort,
    EcsServiceState,
    StoppedTask,
    task_definition_name,
)

Report = Callable[[str], Awaitable[None]]


class RolloutEnd(StrEnum):
    COMPLETED = "completed"  # our deployment reached a steady state
    ROLLED_BACK = "rolled_back"  # the circuit breaker tripped and ECS's rollback completed
    FAILED = "failed"  # the circuit breaker tripped and nothing rolled it back (or that failed)
    SUPERSEDED = "superseded"  # another deployment replaced ours before it completed


@dataclass(frozen=True)
class RolloutResult:
    end: RolloutEnd
    state: EcsServiceState  # the service as last seen
    deployment: EcsDeployment | None  # ours, as last seen
    failed_tasks: int
    reason: str  # ECS's rolloutStateReason, or what the watcher saw
    # The deployment that replaced ours (ECS's rollback, or someone else's update).
    replaced_by: EcsDeployment | None = None


def _find(state: EcsServiceState, deployment_id: str) -> EcsDeployment | None:
    return next((d for d in state.deployments if d.id == deployment_id), None)


def describe_deployment(deployment: EcsDeployment, label: str | None = None) -> str:
    """`api-staging:3 IN_PROGRESS: 1/2 running, 1 pending`; `label` replaces the state."""
    state = label or deployment.rollout_state or deployment.status
    text = (
        f"{task_definition_name(deployment.task_definition)} {state}: "
        f"{deployment.running}/{deployment.desired} running"
    )
    if deployment.pending:
        text += f", {deployment.pending} pending"
    if deployment.failed_tasks:
        text += f", {deployment.failed_tasks} failed to start"
    return text


def describe_rollout(
    state: EcsServiceState, deployment_id: str, elapsed: timedelta, *, restoring: bool = False
) -> str:
    """One progress line: the watched deployment first, then what it replaces, then time.

    While ECS rolls back (`restoring`), the watched deployment brings back the revision that
    ran before: it is "restoring", and the tasks of that revision still running from before
    the deploy are counted with it rather than shown as an old deployment."""
    ours = _find(state, deployment_id) or state.primary
    parts = []
    if ours is not None:
        parts.append(describe_deployment(ours, "restoring" if restoring else None))
    for other in state.deployments:
        if ours is not None and other.id == ours.id:
            continue
        name = task_definition_name(other.task_definition)
        if restoring and ours is not None and other.task_definition == ours.task_definition:
            if other.running or other.pending:
                parts.append(f"{name} from before: {other.running} still running")
            continue
        if other.status == "PRIMARY":
            parts.append(describe_deployment(other))
        elif other.rollout_state == "FAILED":
            parts.append(f"{name} FAILED: {other.running} running")
        elif other.running or other.pending:
            parts.append(f"{name} (old): {other.running} running")
        else:
            parts.append(f"{name} (old): stopped")
    parts.append(f"{format_duration(elapsed)} elapsed")
    return " · ".join(parts)


def breaker_reason(reason: str | None) -> str:
    """`ECS deployment circuit breaker: tasks failed to start.` -> `tasks failed to start`."""
    text = (reason or "").removeprefix("ECS deployment circuit breaker:").strip().rstrip(".")
    return text or "tasks failed to start"


def summarize_stopped(tasks: list[StoppedTask], limit: int = 5) -> list[str]:
    """Stopped tasks grouped by why they stopped: `3 tasks: Essential container … (app: exit code 1)`."""
    groups: Counter[tuple[str, str]] = Counter()
    for task in tasks:
        reason = task.stopped_reason or task.stop_code or "no reason given"
        detail = "; ".join(task.containers)
        groups[(reason, detail)] += 1
    lines = []
    for (reason, detail), count in groups.most_common(limit):
        what = f"{count} task{'s' if count != 1 else ''}"
        lines.append(f"{what}: {reason}" + (f" ({detail})" if detail else ""))
    return lines


class RolloutWatcher:
    """Follows one ECS deployment (and ECS's own rollback of it) to its end."""

    def __init__(
        self,
        ecs: EcsPort,
        scope: AwsScope,
        target: EcsTarget,
        deployment_id: str,
        *,
        report: Report,
        timing: Polling | None = None,
        started: float | None = None,
    ) -> None:
        self._ecs = ecs
        self._scope = scope
        self._target = target
        self._deployment_id = deployment_id
        self._report = report
        self._timing = timing or Polling()
        self._started = time.monotonic() if started is None else started
        self.last: EcsServiceState | None = None
        self.ours: EcsDeployment | None = None
        self.rollback: EcsDeployment | None = None

    def elapsed(self) -> timedelta:
        return timedelta(seconds=time.monotonic() - self._started)

    def status_line(self) -> str:
        """Where the rollout stands, for a timeout or cancellation message."""
        if self.last is None:
            return "no state seen yet"
        watched = self.rollback.id if self.rollback is not None else self._deployment_id
        return describe_rollout(
            self.last, watched, self.elapsed(), restoring=self.rollback is not None
        )

    async def watch(self) -> RolloutResult:
        timing = self._timing
        poll = timing.first
        last_key: object = None
        last_report = time.monotonic()
        while True:
            state = await self._ecs.describe_service(self._scope, self._target)
            self.last = state
            result = await self._evaluate(state)
            if result is not None:
                return result
            watched = self.rollback.id if self.rollback is not None else self._deployment_id
            key = tuple(
                (d.id, d.status, d.rollout_state, d.running, d.pending, d.failed_tasks)
                for d in state.deployments
            )
            now = time.monotonic()
            restoring = self.rollback is not None
            if key != last_key:
                await self._report(
                    describe_rollout(state, watched, self.elapsed(), restoring=restoring)
                )
                last_key, last_report, poll = key, now, timing.first
            else:
                if now - last_report >= timing.report_every:
                    line = describe_rollout(state, watched, self.elapsed(), restoring=restoring)
                    await self._report(f"still rolling out: {line}")
                    last_report = now
                poll = min(poll * timing.factor, timing.longest)
            await asyncio.sleep(poll)

    async def _evaluate(self, state: EcsServiceState) -> RolloutResult | None:
        """The end of the rollout if `state` shows one; None while it goes on."""
        ours = _find(state, self._deployment_id)
        if ours is not None:
            self.ours = ours
        primary = state.primary
        if self.rollback is not None:
            return self._follow_rollback(state)
        if ours is not None and ours.rollout_state == "COMPLETED":
            return RolloutResult(
                RolloutEnd.COMPLETED, state, ours, ours.failed_tasks, ours.rollout_reason or ""
            )
        if ours is not None and ours.rollout_state is None and self._steady_without_state(state):
            return RolloutResult(RolloutEnd.COMPLETED, state, ours, 0, "steady state")
        tripped = (ours is not None and ours.rollout_state == "FAILED") or (
            ours is None and self._failed_event(state)
        )
        if primary is not None and primary.id != self._deployment_id:
            if tripped or "rolling back" in (primary.rollout_reason or ""):
                self.rollback = primary
                await self._report(self._tripped_line(primary))
                return self._follow_rollback(state)
            seen = self.ours
            return RolloutResult(
                RolloutEnd.SUPERSEDED,
                state,
                seen,
                seen.failed_tasks if seen else 0,
                f"deployment {primary.id} ({task_definition_name(primary.task_definition)}) "
                "replaced it: the service was changed outside this deploy",
                replaced_by=primary,
            )
        if tripped:
            failed = ours.failed_tasks if ours else 0
            reason = (ours.rollout_reason if ours else None) or "deployment failed"
            return RolloutResult(RolloutEnd.FAILED, state, ours, failed, reason)
        return None

    def _steady_without_state(self, state: EcsServiceState) -> bool:
        """Deployments without a rolloutState (older APIs): one deployment, all running."""
        ours = _find(state, self._deployment_id)
        return (
            ours is not None
            and len(state.deployments) == 1
            and ours.running == ours.desired
            and ours.pending == 0
        )

    def _failed_event(self, state: EcsServiceState) -> bool:
        marker = f"(deployment {self._deployment_id}) deployment failed"
        return any(marker in event.message for event in state.events)

    def _tripped_line(self, rollback: EcsDeployment) -> str:
        failed = self.ours.failed_tasks if self.ours else 0
        why = breaker_reason(self.ours.rollout_reason if self.ours else None)
        count = f" ({failed} failed)" if failed else ""
        return (
            f"⚠️ ECS deployment circuit breaker tripped: {why}{count}; "
            f"ECS is rolling back to {task_definition_name(rollback.task_definition)}"
        )

    def _follow_rollback(self, state: EcsServiceState) -> RolloutResult | None:
        assert self.rollback is not None
        rollback = _find(state, self.rollback.id)
        ours = self.ours
        failed = ours.failed_tasks if ours else 0
        why = (ours.rollout_reason if ours else None) or "circuit breaker tripped"
        if rollback is None:
            return RolloutResult(
                RolloutEnd.FAILED,
                state,
                ours,
                failed,
                f"{why}; the rollback deployment {self.rollback.id} was itself replaced",
                replaced_by=self.rollback,
            )
        self.rollback = rollback
        if rollback.rollout_state == "COMPLETED":
            return RolloutResult(RolloutEnd.ROLLED_BACK, state, ours, failed, why, rollback)
        if rollback.rollout_state == "FAILED":
            return RolloutResult(
                RolloutEnd.FAILED,
                state,
                ours,
                failed,
                f"{why}; the rollback failed too ({rollback.rollout_reason or 'no reason given'})",
                replaced_by=rollback,
            )
        return None
