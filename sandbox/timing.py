"""How long the sandbox's simulated AWS transitions take, in wall-clock seconds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SandboxTiming(BaseModel):
    """Durations of the transitions the sandbox plays out over time.

    The defaults make a two-task ECS rollout take about six seconds, which is slow enough
    to watch progress in chat and fast enough for a demo. Tests use a fraction of that.
    """

    model_config = ConfigDict(frozen=True)

    ecs_task_step: float = Field(default=2.0, ge=0)
    """One ECS scheduler step: start a batch of tasks, a task passing its health check,
    or stopping old tasks."""
    target_health_check: float = Field(default=2.0, ge=0)
    """An ELBv2 target stays `initial` this long after registration, then turns `healthy`."""
    deregistration_delay: float = Field(default=3.0, ge=0)
    """An ELBv2 target stays `draining` this long after deregistration."""
    instance_transition: float = Field(default=1.0, ge=0)
    """EC2 `pending` -> `running` and `stopping` -> `stopped`."""
    rds_modify: float = Field(default=3.0, ge=0)
    """An RDS instance modified with ApplyImmediately stays `modifying` this long."""
    ssm_command: float = Field(default=2.0, ge=0)
    """One instance's part of an SSM Run Command (its invocation) runs this long."""
    asg_instance_warmup: float = Field(default=2.0, ge=0)
    """An instance that an instance refresh launched takes this long to be healthy and
    warmed up (the refresh's `InstanceWarmup`, in sandbox time)."""
    asg_checkpoint_delay: float = Field(default=3.0, ge=0)
    """The longest an instance refresh waits at a checkpoint (its `CheckpointDelay` when
    that is shorter)."""

    @classmethod
    def fast(cls) -> SandboxTiming:
        """Timing for tests: every transition still happens, but in a fraction of a second."""
        return cls(
            ecs_task_step=0.15,
            target_health_check=0.2,
            deregistration_delay=0.3,
            instance_transition=0.1,
            rds_modify=0.3,
            ssm_command=0.2,
            asg_instance_warmup=0.2,
            asg_checkpoint_delay=0.3,
        )
