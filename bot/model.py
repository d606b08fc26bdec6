"""Records that flow between the core, the store and the adapters.

Here as in the ports, models build their validators when first used (`defer_build`), not as
their module loads: a one-shot `kajitori run` uses few of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Origin(BaseModel, defer_build=True):
    """Where a command came from, and so where its answers go.

    `adapter` picks the chat adapter (slack, typetalk, local), `channel` is the member-visible
    channel id (`slack:C0123`, `typetalk:topic/42`, `local`), `thread` the adapter's thread or
    reply-chain reference, `extra` whatever else the adapter needs to answer (a response_url).
    """

    adapter: str
    channel: str
    member: str
    thread: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
    # Whether the adapter can answer one member privately (an ephemeral message or a DM).
    private_replies: bool = True

    def in_thread(self, thread: str | None) -> Origin:
        return self.model_copy(update={"thread": thread})


class Outcome(StrEnum):
    OK = "ok"
    STARTED = "started"  # a job was started
    PENDING = "pending"  # waits for approval or confirmation
    REFUSED = "refused"
    USAGE = "usage"
    FAILED = "failed"
    ERROR = "error"  # internal error


class JobStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self is not JobStatus.RUNNING


class AuditRecord(BaseModel, defer_build=True):
    at: datetime
    member: str  # the id used (`slack:U012ABC`)
    channel: str
    text: str  # secrets redacted
    # The person the id belongs to (access.people), or the id itself.
    person: str = ""
    outcome: str
    job_id: int | None = None
    detail: str = ""
    # "SERVICE/ENV" when the command named a service (or database) and an environment.
    target: str | None = None


class JobRecord(BaseModel, defer_build=True):
    id: int
    command: str
    title: str
    member: str
    origin: Origin
    threads: list[Origin] = Field(default_factory=list)
    status: JobStatus = JobStatus.RUNNING
    summary: str = ""
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    # Which replica runs it, until when (durable jobs take over an expired lease).
    runner: str = ""
    lease_expires: datetime | None = None
    # What the job has done so far, step by step, so another replica can resume it.
    state: dict[str, Any] = Field(default_factory=dict)
    # Which resumer may take the job over (the plan's kind); empty: it is marked interrupted.
    kind: str = ""
    # When the job times out, kept across a takeover.
    deadline: datetime | None = None
    # The locks it holds, with their tokens, so that a replica taking over renews them.
    locks: list[LockRecord] = Field(default_factory=list)
    # What it changes ("SERVICE/ENV"), even where its requester's own lock covered it.
    targets: list[str] = Field(default_factory=list)
    # Who approved or confirmed the plan it runs, if anyone.
    approved_by: str | None = None
    # The person `member` belongs to (access.people), or the id itself.
    person: str = ""
    # Its final message, whole (redacted); `summary` is the first line.
    result: str = ""
    # Who cancelled it (`cancel J4`), and how the job ended that.
    cancelled_by: str | None = None

    @property
    def ref(self) -> str:
        return f"J{self.id}"

    @property
    def target_keys(self) -> list[str]:
        """What the job changes; older records name only the locks they took."""
        return self.targets or [lock.key for lock in self.locks]


class LockRecord(BaseModel, defer_build=True):
    key: str  # "SERVICE/ENV"
    owner: str  # member id
    reason: str = ""
    job_id: int | None = None
    token: str  # unique per acquisition; release and renewal are conditional on it
    acquired_at: datetime
    expires_at: datetime

    @property
    def service(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def env(self) -> str:
        return self.key.split("/", 1)[1]


class RequestKind(StrEnum):
    APPROVAL = "approval"  # a second member with an approver role
    CONFIRMATION = "confirmation"  # the requester (or an approver) confirms a destructive command


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    # Approved, but the world no longer matched the plan's `from` state: nothing ran.
    OUTDATED = "outdated"


class ApprovalRequest(BaseModel, defer_build=True):
    """A plan waiting for an approval or a confirmation, stored whole: deciding it runs this
    plan (its kind's runner with its state), never the command planned again."""

    id: int
    kind: RequestKind
    command: str
    member: str
    origin: Origin
    env: str | None
    summary: str  # the plan's title
    changes: list[str] = Field(default_factory=list)
    # The plan itself.
    plan_kind: str = ""
    state: dict[str, Any] = Field(default_factory=dict)
    locks: list[str] = Field(default_factory=list)  # "SERVICE/ENV"
    destructive: bool = False
    timeout: timedelta = timedelta(minutes=30)
    # The permission the command needed, checked again for the requester when it runs.
    permission: str = ""
    # The person who asked (access.people), or the id itself.
    person: str = ""
    status: RequestStatus = RequestStatus.PENDING
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    # What the command would change ("SERVICE/ENV").
    targets: list[str] = Field(default_factory=list)
    # What a denial means, when it means more than "nothing happens".
    on_deny: str = ""

    @property
    def ref(self) -> str:
        return f"R{self.id}"


class DeployRecord(BaseModel, defer_build=True):
    id: int
    service: str
    env: str
    version: str
    task_definition: str = ""
    previous_version: str | None = None
    previous_task_definition: str | None = None
    triggered_by: str
    kind: str = "deploy"  # deploy | rollback
    job_id: int | None = None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str = "running"  # running | succeeded | failed | rolled_back | cancelled | aborted
    detail: str = ""
    # Fleets: the version each instance runs after the deploy (as far as it went) and before.
    instances: dict[str, str] = Field(default_factory=dict)
    previous_instances: dict[str, str] = Field(default_factory=dict)


class DbSessionRecord(BaseModel, defer_build=True):
    id: int
    database: str
    env: str
    member: str
    user: str
    host: str
    port: int
    opened_at: datetime
    expires_at: datetime
    runner: str = ""
    status: str = "open"  # open | closed
