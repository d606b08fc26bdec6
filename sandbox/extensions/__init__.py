"""kajitori's extensions to moto: the AWS behaviour the bot relies on and moto lacks.

Each module patches moto's model classes (or, where moto has no action at all, adds a
response handler). `install()` applies them all once per process and returns the
shared runtime through which the sandbox sets the timing.
"""

from __future__ import annotations

import threading

from sandbox.extensions import (
    alarm_events,
    asg_refresh,
    autoscaling_limits,
    ec2_instances,
    ecs_deployments,
    elbv2_targets,
    rds_modify,
    rds_orderable,
    route53_limits,
    scheduled_events,
    service_quotas,
    sqs_clock,
    ssm_commands,
)
from sandbox.extensions.runtime import Runtime


class _Installation:
    lock = threading.Lock()
    runtime: Runtime | None = None


def install() -> Runtime:
    """Patch moto (idempotent) and return the process-wide runtime."""
    with _Installation.lock:
        if _Installation.runtime is None:
            runtime = Runtime()
            service_quotas.install()
            ecs_deployments.install(runtime)
            ec2_instances.install(runtime)
            elbv2_targets.install(runtime)
            autoscaling_limits.install()
            route53_limits.install()
            rds_modify.install(runtime)
            rds_orderable.install()
            ssm_commands.install(runtime)
            asg_refresh.install(runtime)
            alarm_events.install()
            scheduled_events.install()
            sqs_clock.install()
            _Installation.runtime = runtime
        return _Installation.runtime


__all__ = ["Runtime", "install"]
