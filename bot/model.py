"""Records that flow between the core, the store and the adapters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Origin(BaseModel):
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


class AuditRecord(BaseModel):
    at: datetime
    member: str
    channel: str
    text: str  # secrets redacted
    outcome: str
    job_id: int | None = None
    detail: str = ""


class JobRecord(BaseModel):
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


class LockRecord(BaseModel):
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


class ApprovalRequest(BaseModel):
    id: int
    kind: RequestKind
    command: str
    member: str
    origin: Origin
    env: str | None
    summary: str
    changes: list[str] = Field(default_factory=list)
    status: RequestStatus = RequestStatus.PENDING
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None


class DeployRecord(BaseModel):
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


class DbSessionRecord(BaseModel):
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
