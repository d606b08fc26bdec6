"""The one way in for every adapter: text in, result out, with every guardrail in between.

parse -> channel, member and permission -> the command's handler -> for a plan: locks,
dry run, approval or confirmation, then a background job. Errors users can act on become a
reply here, with the usage line; anything else becomes "internal error" and a log entry.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass, field

from bot.config import Config
from bot.errors import KajitoriError, Refused, UsageError, failure_reply, unknown_name
from bot.grammar import format_duration
from bot.jobs.locks import DeployLocks
from bot.jobs.manager import JobManager
from bot.messages import Button, Message, Tone
from bot.model import (
    ApprovalRequest,
    AuditRecord,
    JobRecord,
    Origin,
    Outcome,
    RequestKind,
    RequestStatus,
)
from bot.plan import Plan
from bot.services import Services
from bot.spec import Context, Decision, ParsedCommand, Registry

log = logging.getLogger(__name__)


@dataclass
class Result:
    outcome: Outcome
    messages: list[Message] = field(default_factory=list)
    job: JobRecord | None = None
    request: ApprovalRequest | None = None
    command: ParsedCommand | None = None

    @property
    def text(self) -> str:
        return "\n".join(m.plain() for m in self.messages)


class Dispatcher:
    def __init__(
        self, services: Services, registry: Registry, locks: DeployLocks, jobs: JobManager
    ) -> None:
        self.services = services
        self.registry = registry
        self.locks = locks
        self.jobs = jobs

    async def handle(self, origin: Origin, text: str, *, approved_by: str | None = None) -> Result:
        command: ParsedCommand | None = None
        try:
            command = self.registry.parse(text)
            result = await self._run(origin, command, approved_by)
        except Exception as error:
            if isinstance(error, UsageError) and error.usage is None and command is not None:
                error.usage = command.spec.usage
            outcome, text = failure_reply(error, self.services.explain_failure)
            if outcome is Outcome.ERROR:
                error_id = secrets.token_hex(4)
                log.exception(
                    "internal error %s handling a command from %s", error_id, origin.member
                )
                text = f"internal error {error_id} (details are in the logs)"
            elif outcome is Outcome.FAILED and not isinstance(error, KajitoriError):
                log.warning("%s (from %s)", text, origin.member, exc_info=True)
            tone = Tone.WARNING if outcome is Outcome.USAGE else Tone.FAILURE
            result = Result(outcome, [Message(text=text, tone=tone)])
        result.command = command
        self.services.metrics.command_handled(
            command.spec.name if command else "unknown", result.outcome.value
        )
        await self._audit(origin, text, result)
        return result

    async def _audit(self, origin: Origin, text: str, result: Result) -> None:
        services = self.services
        first = result.messages[0].text.splitlines()[0] if result.messages else ""
        try:
            await services.store.add_audit(
                AuditRecord(
                    at=services.clock.now(),
                    member=origin.member,
                    channel=origin.channel,
                    text=services.redactor.text(text.strip())[:500],
                    outcome=result.outcome.value,
                    job_id=result.job.id if result.job else None,
                    detail=services.redactor.text(first)[:300],
                )
            )
        except Exception:
            log.exception("writing the audit record failed")

    async def _run(self, origin: Origin, command: ParsedCommand, approved_by: str | None) -> Result:
        services = self.services
        access = services.access
        spec = command.spec
        access.check_channel(origin.channel)
        access.check_member(origin.member)
        command = resolve_names(command, services.config)
        if not spec.open_to_all:
            access.check_permission(origin.member, spec.permission, command.env)
        if command.yes and not access.is_approver(origin.member):
            roles = ", ".join(services.config.approvals.approvers)
            mine = ", ".join(access.roles_of(origin.member)) or "none"
            raise Refused(
                f"--yes skips the confirmation only for approvers (role {roles}); "
                f"{origin.member} has {mine}",
                hint="run it again without --yes and confirm it with `approve ID`",
            )
        ctx = Context(
            command=command,
            origin=origin,
            services=services,
            locks=self.locks,
            jobs=self.jobs,
            registry=self.registry,
            approved_by=approved_by,
        )
        answer = await spec.handler(ctx)
        if isinstance(answer, Decision):
            return await self.decide(origin, answer.request_id, answer.approve)
        if isinstance(answer, Message):
            return Result(Outcome.OK, [answer])
        return await self._plan(ctx, answer)

    async def _plan(self, ctx: Context, plan: Plan) -> Result:
        services = self.services
        command = ctx.command
        for key in plan.locks:
            await self.locks.check_free_for(key, ctx.member)
        env_name = command.env
        protected = env_name is not None and services.config.environment(env_name).protected
        needs_approval = protected and ctx.approved_by is None
        skip_confirmation = command.yes  # only approvers get this far with --yes
        needs_confirmation = (
            plan.destructive
            and ctx.approved_by is None
            and not needs_approval
            and not skip_confirmation
        )
        if command.dry_run:
            return Result(Outcome.OK, [self._dry_run(plan, needs_approval, needs_confirmation)])
        if needs_approval:
            return await self._request(ctx, plan, RequestKind.APPROVAL)
        if needs_confirmation:
            return await self._request(ctx, plan, RequestKind.CONFIRMATION)
        job = await self.jobs.start(plan, origin=ctx.origin, command=command.text)
        by = f" (approved by {ctx.approved_by})" if ctx.approved_by else ""
        return Result(
            Outcome.STARTED,
            [Message(text=f"{plan.title}: job {job.id}{by}", tone=Tone.PROGRESS)],
            job=job,
        )

    def _dry_run(self, plan: Plan, needs_approval: bool, needs_confirmation: bool) -> Message:
        lines = [f"dry run: {plan.title}"]
        lines.extend(f"• {change}" for change in plan.changes)
        lines.extend(f"✓ {check}" for check in plan.checks)
        if plan.locks:
            lines.append("✓ lock free: " + ", ".join(str(k) for k in plan.locks))
        if needs_approval:
            lines.append("• would need approval by a second member (protected environment)")
        elif needs_confirmation:
            lines.append("• would ask for confirmation (destructive)")
        lines.append("nothing was changed")
        return Message(text="\n".join(lines))

    async def _request(self, ctx: Context, plan: Plan, kind: RequestKind) -> Result:
        services = self.services
        now = services.clock.now()
        expiry = services.config.approvals.expiry
        request = ApprovalRequest(
            id=await services.store.next_id("request"),
            kind=kind,
            command=services.redactor.text(ctx.command.text),
            member=ctx.member,
            origin=ctx.origin,
            env=ctx.command.env,
            summary=plan.title,
            changes=plan.changes,
            created_at=now,
            expires_at=now + expiry,
        )
        await services.store.put_request(request)
        if kind is RequestKind.APPROVAL:
            approvers = ", ".join(services.config.approvals.approvers)
            head = (
                f"{plan.title} needs approval: request {request.id} by {ctx.member}. "
                f"A second member with role {approvers} answers `approve {request.id}` "
                f"or `deny {request.id}` within {format_duration(expiry)}."
            )
            buttons = [
                Button(action="approve", request_id=str(request.id), label="Approve"),
                Button(action="deny", request_id=str(request.id), label="Deny"),
            ]
        else:
            head = (
                f"{plan.title} is destructive: confirm with `approve {request.id}` "
                f"or cancel with `deny {request.id}` within {format_duration(expiry)}."
            )
            buttons = [
                Button(action="approve", request_id=str(request.id), label="Confirm"),
                Button(action="deny", request_id=str(request.id), label="Cancel"),
            ]
        text = "\n".join([head, *(f"• {change}" for change in plan.changes)])
        return Result(
            Outcome.PENDING,
            [Message(text=text, tone=Tone.WARNING, buttons=buttons)],
            request=request,
        )

    async def decide(self, approver: Origin, request_id: int, approve: bool) -> Result:
        """`approve ID` / `deny ID`: check who may decide, then run the request as its requester."""
        services = self.services
        access = services.access
        request = await services.store.get_request(request_id)
        if request is None:
            raise Refused(
                f"there is no request {request_id}", hint="see the id in the request message"
            )
        verb = "approve" if approve else "deny"
        if request.status is not RequestStatus.PENDING:
            by = f" by {request.decided_by}" if request.decided_by else ""
            raise Refused(f"request {request_id} is already {request.status.value}{by}")
        now = services.clock.now()
        if request.expires_at <= now:
            await services.store.decide_request(request_id, RequestStatus.EXPIRED, "expiry", now)
            raise Refused(
                f"request {request_id} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC",
                hint=f"run the command again: {request.command}",
            )
        is_requester = approver.member == request.member
        if request.kind is RequestKind.APPROVAL:
            if is_requester and approve:
                raise Refused(
                    f"you cannot {verb} your own request {request_id}",
                    hint="a second member with an approver role must approve it",
                )
            if not access.is_approver(approver.member) and not is_requester:
                roles = ", ".join(services.config.approvals.approvers)
                raise Refused(
                    f"{approver.member} cannot {verb} request {request_id}: approvers have role {roles}"
                )
        elif not is_requester and not access.is_approver(approver.member):
            raise Refused(f"only {request.member} or an approver can {verb} request {request_id}")
        status = RequestStatus.APPROVED if approve else RequestStatus.DENIED
        if not await services.store.decide_request(request_id, status, approver.member, now):
            raise Refused(f"request {request_id} was decided by someone else just now")
        if not approve:
            message = Message(
                text=f"request {request_id} ({request.summary}) denied by {approver.member}",
                tone=Tone.FAILURE,
            )
            if (
                approver.thread != request.origin.thread
                or approver.channel != request.origin.channel
            ):
                await services.chat.reply(request.origin, message)
            return Result(Outcome.OK, [message], request=request)
        # The request's command runs again as its requester, now approved.
        result = await self.handle(request.origin, request.command, approved_by=approver.member)
        verb_done = "approved" if request.kind is RequestKind.APPROVAL else "confirmed"
        decided = Message(
            text=f"request {request_id} ({request.summary}) {verb_done} by {approver.member}",
            tone=Tone.SUCCESS,
        )
        result.messages.insert(0, decided)
        result.request = request
        return result


def resolve_names(command: ParsedCommand, config: Config) -> ParsedCommand:
    """The command with its environment, service and database names as the config spells
    them (`Staging`, `prod` -> `staging`, `production`); an unknown name is a usage error
    that lists the known ones. Locks, permissions and records then see one name."""
    args = dict(command.args)
    env = args.get("env")
    if not isinstance(env, str):
        return command
    env = args["env"] = config.environment_name(env)
    if isinstance(service := args.get("service"), str):
        args["service"] = config.service_name(service, env)
    if isinstance(database := args.get("database"), str):
        args["database"] = config.database_name(database, env)
    if isinstance(target := args.get("target"), str):
        environment = config.environments[env]
        names = [*environment.services, *environment.databases]
        found = next((n for n in names if n.casefold() == target.casefold()), None)
        if found is None:
            raise unknown_name("service or database", target, names, where=env)
        args["target"] = found
    return dataclasses.replace(command, args=args)
