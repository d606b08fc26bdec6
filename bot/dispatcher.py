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
from datetime import datetime

from bot.config import Config
from bot.errors import KajitoriError, Refused, UsageError, failure_reply, unknown_name
from bot.grammar import format_duration
from bot.jobs.locks import DeployLocks, LockKey, describe_holder
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

    async def press(self, origin: Origin, command: str, *, run: bool) -> Result:
        """A suggested command's button, pressed by the member of `origin`.

        It takes two presses. The first (`run=False`) goes through the same checks as the
        typed command and shows its dry run (or, for a command without one, what it is),
        with a Run button; the second (`run=True`) is exactly the typed command, so the
        lock, approval on protected environments and confirmation of destructive commands
        follow. Both are audited as the member who pressed."""
        if run:
            return await self.handle(origin, command)
        try:
            parsed = self.registry.parse(command)
        except Exception:
            return await self.handle(origin, command)  # the usage error, as typed
        if "--dry-run" in parsed.spec.flags and not parsed.dry_run:
            result = await self.handle(origin, f"{command} --dry-run")
        else:
            result = await self._checked_only(origin, parsed)
        if result.outcome is Outcome.OK:
            result.messages.append(
                Message(
                    text=f"{origin.member}: press Run to do it, or type `{command}`",
                    tone=Tone.WARNING,
                    buttons=[Button(action="run", label=f"Run: {command}"[:75], command=command)],
                )
            )
        return result

    async def _checked_only(self, origin: Origin, command: ParsedCommand) -> Result:
        """The access checks of `command` without running it (a press on a suggestion
        whose command has no dry run)."""
        access = self.services.access
        try:
            access.check_channel(origin.channel)
            access.check_member(origin.member)
            if not command.spec.open_to_all:
                access.check_permission(origin.member, command.spec.permission, command.env)
            env = command.env
            protected = env is not None and self.services.config.environment(env).protected
        except Exception as error:
            outcome, text = failure_reply(error, self.services.explain_failure)
            result = Result(outcome, [Message(text=text, tone=Tone.FAILURE)], command=command)
        else:
            note = " (a second member approves it: protected environment)" if protected else ""
            result = Result(
                Outcome.OK,
                [Message(text=f"`{command.text}` has no dry run; it would run as typed{note}")],
                command=command,
            )
        await self._audit(origin, f"{command.text} (suggestion pressed)", result)
        return result

    async def _audit(self, origin: Origin, text: str, result: Result) -> None:
        services = self.services
        first = result.messages[0].text.splitlines()[0] if result.messages else ""
        try:
            await services.store.add_audit(
                AuditRecord(
                    at=services.clock.now(),
                    member=origin.member,
                    person=services.access.person_of(origin.member),
                    channel=origin.channel,
                    text=services.redactor.text(text.strip())[:500],
                    outcome=result.outcome.value,
                    job_id=result.job.id if result.job else None,
                    detail=services.redactor.text(first)[:300],
                    target=_target(result.command),
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
        )
        answer = await spec.handler(ctx)
        if isinstance(answer, Decision):
            return await self.decide(origin, answer.request_id, answer.approve)
        if isinstance(answer, Message):
            return Result(Outcome.OK, [answer])
        return await self._plan(ctx, answer, approved_by)

    async def _plan(self, ctx: Context, plan: Plan, approved_by: str | None) -> Result:
        """`approved_by` is set when the config approves in advance (a trigger's deploys)."""
        services = self.services
        command = ctx.command
        if not plan.kind:
            raise ValueError(f"the plan {plan.title!r} names no kind")
        if not command.dry_run:
            for key in plan.locks:
                await self.locks.check_free_for(key, ctx.member)
        env_name = command.env
        protected = env_name is not None and services.config.environment(env_name).protected
        needs_approval = protected and approved_by is None
        skip_confirmation = command.yes  # only approvers get this far with --yes
        needs_confirmation = (
            plan.destructive
            and approved_by is None
            and not needs_approval
            and not skip_confirmation
        )
        if command.dry_run:
            return await self._dry_run(ctx, plan, needs_approval, needs_confirmation)
        if needs_approval:
            return await self._request(ctx, plan, RequestKind.APPROVAL)
        if needs_confirmation:
            return await self._request(ctx, plan, RequestKind.CONFIRMATION)
        job = await self.jobs.start(
            plan, origin=ctx.origin, command=command.text, approved_by=approved_by
        )
        by = f" (approved by {approved_by})" if approved_by else ""
        return Result(
            Outcome.STARTED,
            [Message(text=f"{plan.title}: job {job.ref}{by}", tone=Tone.PROGRESS)],
            job=job,
        )

    async def _dry_run(
        self, ctx: Context, plan: Plan, needs_approval: bool, needs_confirmation: bool
    ) -> Result:
        """What would change and what was checked; a lock someone else holds is shown as
        what it is (the command would be refused), never as free."""
        lines = [f"dry run: {plan.title}"]
        lines.extend(f"• {change}" for change in plan.changes)
        lines.extend(check.line() for check in plan.checks)
        now = self.services.clock.now()
        blocked = False
        for key in plan.locks:
            holder = await self.locks.holder(key)
            if holder is None:
                lines.append(f"✓ lock {key} is free")
            elif holder.owner == ctx.member and holder.job_id is None:
                lines.append(f"✓ lock {key} is yours ({describe_holder(holder, now)})")
            else:
                blocked = True
                lines.append(
                    f"✗ lock {key} is held by {describe_holder(holder, now)}: "
                    "the command would be refused now"
                )
        if needs_approval:
            lines.append(
                "• would need approval by a second member (protected environment); the "
                "approval runs exactly this plan, or nothing if the service changed meanwhile"
            )
        elif needs_confirmation:
            lines.append(
                "• would ask for confirmation (destructive); confirming runs exactly this "
                "plan, or nothing if the service changed meanwhile"
            )
        lines.append("nothing was changed")
        outcome = Outcome.REFUSED if blocked else Outcome.OK
        tone = Tone.WARNING if blocked else Tone.INFO
        return Result(outcome, [Message(text="\n".join(lines), tone=tone)])

    async def _claim_target(self, key: LockKey, request: ApprovalRequest) -> None:
        """Make `request` the one open request for `key`; Refused, naming the open one,
        when another request for the same service and environment still waits."""
        store = self.services.store
        slot = f"open-request:{key}"
        while True:
            held = await store.get_value(slot)
            if held is not None:
                pending = await store.get_request(int(held))
                if (
                    pending is not None
                    and pending.status is RequestStatus.PENDING
                    and pending.expires_at > self.services.clock.now()
                ):
                    raise Refused(
                        f"{key} already has an open request {pending.ref} by "
                        f"{self.services.access.who(pending.member)}: {pending.summary}",
                        hint=f"decide it first (`approve {pending.ref}`), or withdraw it with "
                        f"`deny {pending.ref}`, then ask again",
                    )
            # Conditional on what was read: of two requests racing, one gets the slot.
            if await store.swap_value(slot, held, str(request.id)):
                return

    async def _request(self, ctx: Context, plan: Plan, kind: RequestKind) -> Result:
        services = self.services
        now = services.clock.now()
        expiry = services.config.approvals.expiry
        request = ApprovalRequest(
            id=await services.store.next_id("request"),
            kind=kind,
            command=services.redactor.text(ctx.command.text),
            member=ctx.member,
            person=services.access.person_of(ctx.member),
            origin=ctx.origin,
            env=ctx.command.env,
            summary=plan.title,
            changes=plan.changes,
            plan_kind=plan.kind,
            state=plan.state,
            locks=[str(key) for key in plan.locks],
            destructive=plan.destructive,
            timeout=plan.timeout,
            permission=ctx.command.spec.permission,
            created_at=now,
            expires_at=now + expiry,
            targets=plan.targets,
            on_deny=plan.on_deny,
        )
        for key in plan.locks:
            await self._claim_target(key, request)
        await services.store.put_request(request)
        if kind is RequestKind.APPROVAL:
            approvers = ", ".join(services.config.approvals.approvers)
            head = (
                f"{plan.title} needs approval: request {request.ref} by "
                f"{services.access.who(ctx.member)}. A second person with role {approvers} "
                f"answers `approve {request.ref}` or `deny {request.ref}` within "
                f"{format_duration(expiry)}."
            )
            labels = ("Approve", "Deny")
        elif plan.on_deny:
            head = (
                f"{plan.title}? `approve {request.ref}` does it; `deny {request.ref}`: "
                f"{plan.on_deny}. Answer within {format_duration(expiry)}."
            )
            labels = ("Confirm", "Deny")
        else:
            head = (
                f"{plan.title} is destructive: confirm with `approve {request.ref}` "
                f"or cancel with `deny {request.ref}` within {format_duration(expiry)}."
            )
            labels = ("Confirm", "Cancel")
        buttons = [
            Button(action="approve", request_id=request.ref, label=labels[0]),
            Button(action="deny", request_id=request.ref, label=labels[1]),
        ]
        tail = (
            "This exact plan runs when it is approved; if the service changes before "
            "that, nothing runs."
        )
        text = "\n".join([head, *(f"• {change}" for change in plan.changes), tail])
        return Result(
            Outcome.PENDING,
            [Message(text=text, tone=Tone.WARNING, buttons=buttons)],
            request=request,
        )

    async def decide(self, approver: Origin, request_id: int, approve: bool) -> Result:
        """`approve ID` / `deny ID`: check who may decide, then run the stored plan as its
        requester, once the world is checked to still match it."""
        services = self.services
        access = services.access
        request = await services.store.get_request(request_id)
        if request is None:
            raise Refused(
                f"there is no request R{request_id}", hint="see the id in the request message"
            )
        verb = "approve" if approve else "deny"
        if request.status is not RequestStatus.PENDING:
            by = f" by {request.decided_by}" if request.decided_by else ""
            raise Refused(f"request R{request_id} is already {request.status.value}{by}")
        now = services.clock.now()
        if request.expires_at <= now:
            await services.store.decide_request(request_id, RequestStatus.EXPIRED, "expiry", now)
            raise Refused(
                f"request R{request_id} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC",
                hint=f"run the command again: {request.command}",
            )
        # People, not ids: one person with two ids is still the requester.
        is_requester = access.same_person(approver.member, request.member)
        if request.kind is RequestKind.APPROVAL:
            if is_requester and approve:
                same = (
                    f" (as {approver.member}; it was asked as {request.member})"
                    if approver.member != request.member
                    else ""
                )
                raise Refused(
                    f"you cannot {verb} your own request R{request_id}{same}",
                    hint="a second person with an approver role must approve it",
                )
            if not access.is_approver(approver.member) and not is_requester:
                roles = ", ".join(services.config.approvals.approvers)
                raise Refused(
                    f"{approver.member} cannot {verb} request R{request_id}: approvers have role {roles}"
                )
        elif not is_requester and not access.is_approver(approver.member):
            raise Refused(f"only {request.member} or an approver can {verb} request R{request_id}")
        if not approve:
            if not await services.store.decide_request(
                request_id, RequestStatus.DENIED, approver.member, now
            ):
                raise Refused(f"request R{request_id} was decided by someone else just now")
            then = f"; {request.on_deny}" if request.on_deny else ""
            message = Message(
                text=f"request {request.ref} ({request.summary}) denied by "
                f"{access.who(approver.member)}{then}",
                tone=Tone.FAILURE,
            )
            await self._tell_requester(approver, request, message)
            return Result(Outcome.OK, [message], request=request)
        return await self._run_stored(approver, request, now)

    async def _tell_requester(
        self, approver: Origin, request: ApprovalRequest, message: Message
    ) -> None:
        if approver.thread != request.origin.thread or approver.channel != request.origin.channel:
            await self.services.chat.reply(request.origin, message)

    async def _run_stored(
        self, approver: Origin, request: ApprovalRequest, now: datetime
    ) -> Result:
        """Run the plan stored with `request`: no parsing, no planning, only the checks that
        it may still run as it was approved."""
        services = self.services
        access = services.access
        request_id = request.id
        runner = self.registry.runners.get(request.plan_kind)
        if runner is None:
            raise Refused(
                f"request R{request_id} holds a plan this version of kajitori cannot run "
                f"(kind {request.plan_kind or 'none'}); nothing was changed",
                hint=f"`deny R{request_id}`, then ask again: {request.command}",
            )
        # The requester must still be allowed to do it (the config may have changed).
        access.check_member(request.member)
        access.check_permission(request.member, request.permission, request.env)
        locks = [LockKey(*key.split("/", 1)) for key in request.locks]
        for key in locks:
            await self.locks.check_free_for(key, request.member)
        precheck = self.registry.prechecks.get(request.plan_kind)
        differences = await precheck(services, request.state) if precheck is not None else []
        if differences:
            if not await services.store.decide_request(
                request_id, RequestStatus.OUTDATED, approver.member, now
            ):
                raise Refused(f"request R{request_id} was decided by someone else just now")
            message = Message(
                text="\n".join(
                    [
                        f"request {request.ref} ({request.summary}) was not run: the world "
                        "changed since it was planned, so the approved plan no longer "
                        "applies. Nothing was changed.",
                        *(f"• {line}" for line in differences),
                        f"To go ahead, ask again (it is planned anew): `{request.command}`",
                    ]
                ),
                tone=Tone.FAILURE,
            )
            await self._tell_requester(approver, request, message)
            return Result(Outcome.REFUSED, [message], request=request)
        if not await services.store.decide_request(
            request_id, RequestStatus.APPROVED, approver.member, now
        ):
            raise Refused(f"request R{request_id} was decided by someone else just now")
        plan = Plan(
            title=request.summary,
            changes=request.changes,
            run=runner,
            kind=request.plan_kind,
            state=request.state,
            locks=locks,
            destructive=request.destructive,
            timeout=request.timeout,
        )
        job = await self.jobs.start(
            plan, origin=request.origin, command=request.command, approved_by=approver.member
        )
        verb_done = "approved" if request.kind is RequestKind.APPROVAL else "confirmed"
        who = access.who(approver.member)
        return Result(
            Outcome.STARTED,
            [
                Message(
                    text=f"request {request.ref} ({request.summary}) {verb_done} by {who}",
                    tone=Tone.SUCCESS,
                ),
                Message(
                    text=f"{request.summary}: job {job.ref} (approved by {who})",
                    tone=Tone.PROGRESS,
                ),
            ],
            job=job,
            request=request,
        )


def _target(command: ParsedCommand | None) -> str | None:
    """`SERVICE/ENV` for a command that names a service (or a database) and an environment."""
    if command is None:
        return None
    name = command.optional_word("service") or command.optional_word("target")
    env = command.env
    return f"{name}/{env}" if name and env else None


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
