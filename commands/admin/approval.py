"""`approve REQUEST_ID` / `deny REQUEST_ID`."""

from __future__ import annotations

from bot.ids import REQUEST, parse_ref
from bot.spec import Arg, CommandSpec, Context, Decision


def _request_id(ctx: Context) -> int:
    return parse_ref(ctx.command.word("request_id"), REQUEST, usage=ctx.command.spec.usage)


async def approve(ctx: Context) -> Decision:
    return Decision(_request_id(ctx), approve=True)


async def deny(ctx: Context) -> Decision:
    return Decision(_request_id(ctx), approve=False)


SPECS = [
    CommandSpec(
        name="approve",
        usage="approve REQUEST_ID",
        summary="approve a request on a protected environment, or confirm your destructive command",
        handler=approve,
        permission="approve",
        args=(Arg("request_id"),),
        open_to_all=True,
        examples=("approve R3",),
        details=(
            "Approvals need a second member with an approver role; nobody approves their "
            "own. Request ids start with R (`R3`); `approve 3` works too."
        ),
    ),
    CommandSpec(
        name="deny",
        usage="deny REQUEST_ID",
        summary="deny a request (or cancel your own)",
        handler=deny,
        permission="approve",
        args=(Arg("request_id"),),
        open_to_all=True,
    ),
]
