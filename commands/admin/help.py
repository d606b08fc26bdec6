"""`help [COMMAND]`: generated from the command specs."""

from __future__ import annotations

from bot.errors import UsageError
from bot.messages import Message
from bot.spec import Arg, ArgKind, CommandSpec, Context


async def help_command(ctx: Context) -> Message:
    registry = ctx.registry
    topic = ctx.command.args.get("command")
    if not topic:
        access = ctx.services.access
        lines = ["commands (`help COMMAND` for more):"]
        for spec in registry.specs:
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
        return Message(text="\n".join(lines))
    words = str(topic).split()
    found = registry.find(words)
    matches = [found] if found else registry.group(words[0])
    if not matches:
        raise UsageError(f"no command {topic!r}", hint="type `help` to see the commands")
    parts = []
    for match in matches:
        lines = [f"usage: {match.usage}", match.summary]
        if match.details:
            lines.append(match.details)
        lines.append(
            f"permission: {match.permission}:ENV"
            if not match.open_to_all
            else "open to all members"
        )
        lines.extend(f"example: {example}" for example in match.examples)
        parts.append("\n".join(lines))
    return Message(text="\n\n".join(parts))


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
