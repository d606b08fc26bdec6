"""`status SERVICE ENV`: counts, task definition, image tag, and the last deployment."""

from __future__ import annotations

from bot.messages import Message
from bot.ports.ecs import EcsServiceState
from bot.spec import Arg, CommandSpec, Context
from commands.capacity.fleet import service_status


def describe_ecs(state: EcsServiceState) -> dict[str, str]:
    fields = {
        "desired": str(state.desired),
        "running": str(state.running),
        "pending": str(state.pending),
        "task definition": state.revision,
        "image tag": state.image_tag,
    }
    primary = state.primary
    if primary is not None:
        when = primary.updated_at or primary.created_at
        at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""
        fields["last deployment"] = f"{primary.id} {primary.rollout_state or primary.status}{at}"
        if len(state.deployments) > 1:
            fields["deployments"] = ", ".join(
                f"{d.status} {d.task_definition.rsplit('/', 1)[-1]} {d.running}/{d.desired}"
                for d in state.deployments
            )
    return fields


async def status(ctx: Context) -> Message:
    command = ctx.command
    name, env_name = command.word("service"), command.word("env")
    env = ctx.services.config.environment(env_name)
    service = ctx.services.config.service(name, env_name)
    if service.ecs is not None:
        state = await ctx.services.ecs.describe_service(env.scope, service.ecs)
        message = Message(
            text=f"{name} in {env_name} (ECS {state.cluster}/{state.service})",
            fields=describe_ecs(state),
        )
    else:
        message = await service_status(ctx, name, env_name, service)
    # Which account was read: with a role per environment, not always the same one.
    message.fields["account"] = await ctx.services.accounts.account(env.scope)
    return message


SPECS = [
    CommandSpec(
        name="status",
        usage="status SERVICE ENV",
        summary="desired, running and pending counts, version and last deployment",
        handler=status,
        permission="status",
        args=(Arg("service"), Arg("env")),
        examples=("status api staging",),
    )
]
