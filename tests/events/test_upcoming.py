"""`events [ENV]`: what AWS has scheduled, read from the environment's region. The sandbox
has EC2's instance statuses but no AWS Health API and no RDS pending maintenance: the
answer says which sources it could not read instead of failing."""

from __future__ import annotations

from typing import Any

from bot.model import Origin, Outcome
from tests.events.conftest import BotMaker


async def test_events_says_which_sources_it_could_not_read(
    sandbox: Any, make_bot: BotMaker
) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(
        Origin(adapter="local", channel="local", member="local:alice"), "events staging"
    )
    assert result.outcome is Outcome.OK
    assert "nothing scheduled by AWS for staging" in result.text
    assert "AWS Health could not be read" in result.text
    assert "EC2 scheduled events could not be read" not in result.text


async def test_events_needs_the_events_permission(sandbox: Any, make_bot: BotMaker) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(
        Origin(adapter="local", channel="local", member="local:dave"), "events"
    )
    assert result.outcome is Outcome.REFUSED
