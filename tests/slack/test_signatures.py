"""Only requests signed with the app's signing secret, within five minutes, do anything."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from tests.slack.conftest import jobs_in_store
from tests.support.fake_slack import FakeSlack, SlackSender


async def test_forged_signature_and_stale_timestamp_get_401_and_start_nothing(
    sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    deploy = urlencode(sender.slash_body("deploy api staging v2"))
    form = "application/x-www-form-urlencoded"

    forged = sender.sign(deploy, secret="not-the-signing-secret")
    assert (await sender.send(deploy, form, headers=forged))[0] == 401

    stale = sender.sign(deploy, timestamp=int(time.time()) - 6 * 60)
    assert (await sender.send(deploy, form, headers=stale))[0] == 401

    # Signed for another body: the signature covers every byte.
    other = sender.sign(urlencode(sender.slash_body("status api staging")))
    assert (await sender.send(deploy, form, headers=other))[0] == 401

    unsigned = {"X-Slack-Request-Timestamp": str(int(time.time()))}
    assert (await sender.send(deploy, form, headers=unsigned))[0] == 401

    # A genuine request afterwards is served, and is the only thing that happened.
    assert (await sender.slash("status api staging"))[0] == 200
    await fake_slack.wait_for(lambda: any("api in staging" in t for t in fake_slack.said()))
    assert fake_slack.posted == []
    assert [b["text"] for b in fake_slack.hook_posts() if "api in staging" not in b["text"]] == []
    assert await jobs_in_store(tmp_path) == []
