"""Leverages' flow: a CI's signed request deploys the EC2 fleet through SSM, and the result
lands in chat; the fleet's canary bakes and promotes itself without a person."""

from __future__ import annotations

import pytest

from tests.support.fake_slack import FakeSlack
from tests.webhooks.conftest import Kajitori, module_server

JENKINS_WEB = {
    "ci": "jenkins",
    "deploy": {"service": "web", "env": "staging"},
    "channels": ["slack:C0DEMO"],
}

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("fresh_world")]
kajitori = module_server([JENKINS_WEB])


async def test_ci_deploys_the_fleet_through_ssm_and_the_result_reaches_slack(
    kajitori: Kajitori, slack_api: FakeSlack
) -> None:
    status, answer = await kajitori.ci(
        "jenkins", {"service": "web", "env": "staging", "version": "v2"}
    )
    assert status == 202, answer
    assert answer["outcome"] == "started"
    await slack_api.wait_for(
        lambda: any("deployed web v2 to staging" in p.text for p in slack_api.posted),
        timeout=90,
    )
    texts = [p.text for p in slack_api.posted]
    assert any("promoted by bake time" in t for t in texts), texts
    head = next(p for p in slack_api.posted if "ci:jenkins: deploy web" in p.text)
    result = next(p for p in slack_api.posted if "deployed web v2 to staging" in p.text)
    assert result.thread_ts == head.ts
    assert "2 instances in 2 batches (was v1)" in result.text
