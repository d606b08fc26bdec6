"""`kajitori serve` with Slack configured, a fake Slack Web API, and a signed-request sender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.store.sqlite import SqliteStore
from bot.model import JobRecord
from tests.conftest import demo_data
from tests.support.fake_slack import FakeSlack, SlackSender
from tests.support.serve import ServeProcess

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-0000000000-1111111111-kajitoritestbottoken"


def slack_config(folder: Path) -> dict[str, Any]:
    data = demo_data()
    data["store"] = f"sqlite://{folder / 'state.db'}"
    members = data["access"]["members"]
    members.update(
        {"slack:U0ALICE": ["sre"], "slack:U0BOB": ["sre"], "slack:U0CAROL": ["developer"]}
    )
    assert "slack:C0DEMO" in data["access"]["channels"]
    return data


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack().start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest.fixture
async def serve(sandbox: Any, fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[ServeProcess]:
    process = ServeProcess(
        slack_config(tmp_path),
        {
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": fake_slack.api_url,
            "AWS_ENDPOINT_URL": sandbox.url,
        },
        tmp_path,
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
    # Nothing secret may reach the logs.
    log = process.log()
    assert SIGNING_SECRET not in log and BOT_TOKEN not in log


@pytest.fixture
def sender(serve: ServeProcess, fake_slack: FakeSlack) -> SlackSender:
    return SlackSender(serve.url, SIGNING_SECRET, fake_slack.url)


async def jobs_in_store(folder: Path) -> list[JobRecord]:
    """What the running server recorded (SQLite in WAL mode takes a second reader)."""
    store = await SqliteStore.open(str(folder / "state.db"))
    try:
        return await store.list_jobs(limit=100)
    finally:
        await store.close()
