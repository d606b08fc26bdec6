"""`db open DATABASE ENV [for DURATION]`, `db close SESSION_ID`, `db list`.

A session is read-only access to the reader through the bastion, for a while. The
credentials go privately to the member who asked; the channel sees who opened which session
until when. It needs no approval on a protected environment: it cannot change anything, it
ends by itself, and who may open one is the `db:ENV` permission.
"""

from __future__ import annotations

from datetime import timedelta

from bot.errors import Refused, UsageError
from bot.grammar import format_duration
from bot.messages import Message, Table, Tone
from bot.ports.database import DatabaseSessions, SessionGrant, database_target
from bot.spec import Arg, ArgKind, CommandSpec, Context


def _sessions(ctx: Context) -> DatabaseSessions:
    return ctx.services.db_sessions


def mysql_command(grant: SessionGrant) -> str:
    return (
        f"mysql -h {grant.host} -P {grant.port} -u {grant.user} -p{grant.password} {grant.schema}"
    )


async def db_open(ctx: Context) -> Message:
    command = ctx.command
    target = database_target(ctx.services.config, command.word("database"), command.word("env"))
    if not ctx.origin.private_replies:
        raise Refused(
            f"credentials cannot be handed out privately in {ctx.origin.channel}",
            hint="open the session from Slack (`/ops db open ...`) or `kajitori shell`",
        )
    limit = target.config.max_session
    duration = command.duration("duration") or target.config.default_session
    capped = duration > limit
    if capped:
        duration = limit
    grant = await _sessions(ctx).open(
        target, member=ctx.member, origin=ctx.origin, duration=duration
    )
    until = f"{grant.expires_at:%H:%M:%S} UTC"
    session_id = grant.record.id
    # The channel learns who has access to what until when; never how to connect.
    await ctx.services.chat.reply(
        ctx.origin,
        Message(
            text=f"🔓 {ctx.member} opened read-only database session {session_id} on {target} "
            f"until {until} ({format_duration(duration)})"
        ),
    )
    lines = [f"database session {session_id}: {target}, read-only, until {until}"]
    if capped:
        lines.append(
            f"(capped at {format_duration(limit)}, the longest a session on {target} may last)"
        )
    lines.append(f"`db close {session_id}` ends it sooner. Only you can see this message.")
    return Message(
        text="\n".join(lines),
        tone=Tone.SUCCESS,
        private=True,
        fields={
            "host": grant.host,
            "port": str(grant.port),
            "user": grant.user,
            "password": grant.password,
            "database": grant.schema,
            "expires": f"{grant.expires_at:%Y-%m-%d %H:%M:%S} UTC",
            "mysql": mysql_command(grant),
        },
    )


async def db_close(ctx: Context) -> Message:
    raw = ctx.command.word("session_id").lstrip("#")
    if not raw.isdigit():
        raise UsageError(
            f"bad session id {raw!r}: use the number from `db list`", usage=ctx.command.spec.usage
        )
    session_id = int(raw)
    sessions = _sessions(ctx)
    record = next((r for r in await sessions.list_open() if r.id == session_id), None)
    if record is None:
        raise Refused(f"there is no open database session {session_id}", hint="see `db list`")
    access = ctx.services.access
    if record.member != ctx.member and not access.is_approver(ctx.member):
        raise Refused(
            f"database session {session_id} belongs to {record.member}; "
            "only they or an approver can close it",
            hint=f"it ends by itself at {record.expires_at:%H:%M} UTC",
        )
    closed = await sessions.close(session_id, reason=f"closed by {ctx.member}", by=ctx.origin)
    return Message(
        text=f"🔒 database session {session_id} ({closed.database}/{closed.env}, opened by "
        f"{closed.member}) closed: {closed.user} dropped, its connections ended",
        tone=Tone.SUCCESS,
    )


async def db_list(ctx: Context) -> Message:
    records = await _sessions(ctx).list_open()
    if not records:
        return Message(text="no open database sessions")
    now = ctx.services.clock.now()
    rows = [
        [
            str(r.id),
            f"{r.database}/{r.env}",
            r.member,
            f"{r.host}:{r.port}" if r.port else "(opening)",
            r.user,
            f"{r.expires_at:%H:%M:%S}",
            format_duration(max(r.expires_at - now, timedelta(0))),
        ]
        for r in records
    ]
    return Message(
        text="open database sessions (read-only)",
        table=Table(
            columns=["session", "database", "who", "address", "user", "until (UTC)", "left"],
            rows=rows,
        ),
    )


SPECS = [
    CommandSpec(
        name="db open",
        usage="db open DATABASE ENV [for DURATION]",
        summary="a read-only session on the reader through the bastion; credentials come privately",
        handler=db_open,
        permission="db",
        args=(
            Arg("database"),
            Arg("env"),
            Arg("duration", ArgKind.DURATION, optional=True, keyword="for"),
        ),
        examples=("db open main staging", "db open main production for 1h"),
        details=(
            "A temporary user that can only SELECT, behind a local port forwarded through the "
            "bastion. It ends at its expiry (default from the config, capped at its maximum) or "
            "with `db close`: the port closes, the user is dropped, open connections end."
        ),
    ),
    CommandSpec(
        name="db close",
        usage="db close SESSION_ID",
        summary="end a database session now (yours, or any as an approver)",
        handler=db_close,
        permission="db",
        args=(Arg("session_id"),),
        open_to_all=True,
        examples=("db close 3",),
    ),
    CommandSpec(
        name="db list",
        usage="db list",
        summary="open database sessions: who, where, until when",
        handler=db_list,
        permission="db",
        open_to_all=True,
    ),
]
