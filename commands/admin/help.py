"""`help [COMMAND]`: generated from the command specs."""

from __future__ import annotations

from bot.errors import UsageError, did_you_mean
from bot.messages import Message
from bot.spec import FLAG_HELP, Arg, ArgKind, CommandSpec, Context


async def help_command(ctx: Context) -> Message:
    registry = ctx.registry
    topic = ctx.command.args.get("command")
    if not topic:
        return Message(text=_overview(ctx))
    words = str(topic).split()
    found = registry.find(words)
    matches = [found] if found else registry.group(words[0])
    if not matches:
        close = did_you_mean(words[0], {spec.words[0] for spec in registry.specs})
        meant = f": did you mean `help {close}`?" if close else ""
        raise UsageError(f"no command {topic!r}{meant}", hint="type `help` to see the commands")
    return Message(text="\n\n".join(_detail(match) for match in matches))


def _overview(ctx: Context) -> str:
    access = ctx.services.access
    lines = ["commands (`help COMMAND` for one in detail):"]
    for title, specs in ctx.registry.grouped().items():
        lines.append(f"{title}:")
        for spec in specs:
            allowed = (
                spec.open_to_all
                or access.allows(ctx.member, spec.permission, "*")
                or any(
                    access.allows(ctx.member, spec.permission, env)
                    for env in ctx.services.config.environments
                )
            )
            mark = "" if allowed else "  (not allowed for you)"
            lines.append(f"  {spec.usage}  — {spec.summary}{mark}")
    flags = sorted({flag for spec in ctx.registry.specs for flag in spec.flags} & FLAG_HELP.keys())
    lines.append("flags: " + "; ".join(f"{flag}: {FLAG_HELP[flag]}" for flag in flags))
    return "\n".join(lines)


def _detail(spec: CommandSpec) -> str:
    lines = [f"usage: {spec.usage}", spec.summary]
    if spec.details:
        lines.append(spec.details)
    lines.extend(f"{flag}: {spec.describe_flag(flag)}" for flag in sorted(spec.flags))
    lines.append(
        f"permission: {spec.permission}:ENV" if not spec.open_to_all else "open to all members"
    )
    lines.extend(f"example: {example}" for example in spec.examples)
    return "\n".join(lines)


SPECS = [
    CommandSpec(
        name="help",
        usage="help [COMMAND]",
        summary="list the commands, or explain one",
        handler=help_command,
        permission="help",
        args=(Arg("command", ArgKind.REST, optional=True),),
        open_to_all=True,
        examples=("help deploy",),
    )
]
