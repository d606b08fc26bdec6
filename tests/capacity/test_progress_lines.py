"""Progress lines of scale jobs against the sandbox: counts, not lists of ids, and nouns that
agree with their numbers."""

from __future__ import annotations

import re

from adapters.bootstrap import Bot
from bot.model import JobStatus
from tests.capacity.helpers import final_message, fleet, run_job
from tests.support.chat import RecordingChat

INSTANCE_ID = re.compile(r"i-[0-9a-f]+")


async def test_fleet_scale_out_reports_counts_not_every_instance_id(
    bot: Bot, chat: RecordingChat
) -> None:
    before = {i["InstanceId"] for i in await fleet(bot)}
    result = await run_job(bot, "scale out web staging +5")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    assert len(await fleet(bot)) == len(before) + 5

    thread = chat.texts(chat.posted[-1].origin.thread)
    assert any(t.startswith("launched 5 instances (i-") for t in thread), thread
    assert "5 instances running; registering with web-staging-tg" in thread
    assert any(t.startswith("healthy in web-staging-tg: 5 instances (") for t in thread), thread
    # No line names more than the first and the last of the new instances.
    assert all(len(INSTANCE_ID.findall(t)) <= 2 for t in thread), thread
    assert "5 instances (" in summary


async def test_one_instance_is_singular(bot: Bot, chat: RecordingChat) -> None:
    grown = await run_job(bot, "scale out worker staging 2")
    assert (await final_message(bot, grown))[0] is JobStatus.SUCCEEDED
    result = await run_job(bot, "scale out worker staging 1 --yes")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    thread = chat.texts(chat.posted[-1].origin.thread)
    assert any("(1 instance)" in t for t in thread), thread
    assert not any("1 instances" in t for t in thread)
