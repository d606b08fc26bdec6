"""`limits [ENV]`: how much of each AWS limit is used, in the environments' regions, the
fullest first, with what is at or above 80% flagged."""

from __future__ import annotations

from bot.messages import Message, Table, Tone
from bot.ports.capacity import ROUTE53_SCOPE, LimitUsage
from bot.spec import Arg, CommandSpec, Context
from commands.capacity.sizing import number

FLAG_AT = 80.0


def _row(usage: LimitUsage, several_accounts: bool) -> list[str]:
    flag = "⚠️" if usage.percent >= FLAG_AT else ""
    where = "Route 53" if usage.scope == ROUTE53_SCOPE else usage.scope
    if several_accounts and usage.account:
        where = f"{usage.account} {where}"
    return [
        flag,
        usage.name,
        where,
        number(usage.used),
        number(usage.limit),
        f"{usage.percent:.0f}%",
        usage.code or "",
    ]


async def limits(ctx: Context) -> Message:
    env_name = ctx.command.optional_word("env")
    config = ctx.services.config
    envs = [config.environment(env_name)] if env_name else list(config.environments.values())
    regions = sorted({env.region for env in envs})
    ports = ctx.services
    report = await ports.quotas.limits([env.scope for env in envs])
    accounts = sorted({r.account for r in report.rows if r.account})
    rows = sorted(report.rows, key=lambda r: (-r.percent, r.account or "", r.scope, r.name))
    flagged = sum(1 for r in rows if r.percent >= FLAG_AT)
    notes = [f"⚠️ at or above {FLAG_AT:.0f}%"] if flagged else []
    notes.extend(f"not read: {failure}" for failure in report.failures)
    scope = env_name or "all environments"
    where = ", ".join(regions)
    if accounts:
        label = "account" if len(accounts) == 1 else "accounts"
        where += f"; {label} {', '.join(accounts)}"
    head = f"AWS limits for {scope} ({where})"
    summary = f"{flagged} at or above {FLAG_AT:.0f}%" if flagged else f"all below {FLAG_AT:.0f}%"
    return Message(
        text=f"{head}: {summary}",
        tone=Tone.WARNING if flagged or report.failures else Tone.INFO,
        table=Table(
            columns=["", "limit", "where", "used", "max", "use", "quota code"],
            rows=[_row(r, len(accounts) > 1) for r in rows],
            note="\n".join(notes) or None,
        ),
    )


SPECS = [
    CommandSpec(
        name="limits",
        usage="limits [ENV]",
        summary="AWS quotas and limits against their usage, the fullest first",
        handler=limits,
        permission="limits",
        args=(Arg("env", optional=True),),
        examples=("limits", "limits production"),
        details=(
            "EC2 On-Demand vCPUs, Elastic IPs, VPCs, load balancers, target groups, Auto "
            "Scaling groups (per region) and records per Route 53 hosted zone. Rows at or "
            "above 80% are flagged; raise them in Service Quotas with the code shown."
        ),
    )
]
