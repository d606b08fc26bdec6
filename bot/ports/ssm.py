"""What fleet deploys need from AWS Systems Manager: which instances run the agent, Run
Command (send, then read each instance's invocation), documents and parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel

from bot.config import AwsScope

# Invocation statuses that are final (GetCommandInvocation `Status`).
FINAL_STATUSES = frozenset(
    {
        "Success",
        "Failed",
        "Cancelled",
        "TimedOut",
        "DeliveryTimedOut",
        "Undeliverable",
        "Terminated",
        "InvalidPlatform",
        "AccessDenied",
    }
)


class Invocation(BaseModel, defer_build=True):
    """One instance's part of a Run Command (GetCommandInvocation)."""

    command_id: str
    instance_id: str
    status: str  # Pending | InProgress | Delayed | Success | Failed | TimedOut | Cancelled ...
    response_code: int = -1
    stdout: str = ""
    stderr: str = ""

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "Success"

    def tail(self, lines: int = 5) -> str:
        """The last lines of what it printed, stderr first when there is any."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


class SsmPort(Protocol):
    async def managed_instances(self, scope: AwsScope, ids: Sequence[str]) -> dict[str, str]:
        """Of `ids`, the instances whose SSM agent is registered, with its ping status
        (`Online`, `ConnectionLost`, `Inactive`); an instance without the agent is missing."""

    async def document_exists(self, scope: AwsScope, name: str) -> bool: ...

    async def send_command(
        self,
        scope: AwsScope,
        document: str,
        parameters: Mapping[str, Sequence[str]],
        instance_ids: Sequence[str],
        *,
        comment: str,
        timeout_seconds: int,
    ) -> str:
        """SendCommand; the command id. Refused naming the instances when SSM answers
        InvalidInstanceId."""

    async def invocations(
        self, scope: AwsScope, command_id: str, instance_ids: Sequence[str]
    ) -> list[Invocation]:
        """Each instance's invocation of the command, as it stands now."""

    async def parameter(self, scope: AwsScope, name: str) -> str | None:
        """A parameter's value; None when it does not exist."""
