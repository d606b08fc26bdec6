"""What the core needs from ECS and ECR."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from bot.config import EcsTarget


class EcsDeployment(BaseModel):
    id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str
    desired: int
    running: int
    pending: int
    failed_tasks: int = 0
    rollout_state: str | None = None
    rollout_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class EcsEvent(BaseModel):
    id: str
    at: datetime
    message: str


class EcsServiceState(BaseModel):
    cluster: str
    service: str
    status: str
    desired: int
    running: int
    pending: int
    task_definition: str  # ARN
    image: str  # the configured container's image
    deployments: list[EcsDeployment] = Field(default_factory=list)
    events: list[EcsEvent] = Field(default_factory=list)

    @property
    def image_tag(self) -> str:
        return image_tag(self.image)

    @property
    def revision(self) -> str:
        """`family:revision` of the task definition."""
        return self.task_definition.rsplit("/", 1)[-1]

    @property
    def primary(self) -> EcsDeployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)


def image_tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return name.split("@", 1)[1]
    return name.split(":", 1)[1] if ":" in name else "latest"


def image_repository(image: str) -> str:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/api:v1` -> `api`."""
    path = image.split("/", 1)[1] if "/" in image else image
    return path.split("@", 1)[0].split(":", 1)[0]


class EcsPort(Protocol):
    async def describe_service(self, region: str, target: EcsTarget) -> EcsServiceState: ...
