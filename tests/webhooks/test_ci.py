"""A CI's signed request into the real `kajitori serve`; results to Slack and Typetalk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.fake_slack import FakeSlack
from tests.support.typetalk_api import TypetalkApi
from tests.webhooks.conftest import CI_SECRET, RELEASES_TOPIC, Kajitori, module_server, sign

JENKINS = {
    "ci": "jenkins",
    "deploy": {"service": "api", "env": "staging"},
    "channels": ["slack:C0DEMO", f"typetalk:topic/{RELEASES_TOPIC}"],
}

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("fresh_world")]
kajitori = module_server([JENKINS])


async def test_ci_deploys_what_its_trigger_allows_and_the_result_reaches_its_channels(
    kajitori: Kajitori, typetalk_api: TypetalkApi, slack_api: FakeSlack
) -> None:
    build = "https://ci.example.com/job/api/42/"

    status, answer = await kajitori.ci(
        "jenkins", {"service": "api", "env": "staging", "version": "v3", "url": build}
    )

    assert status == 202
    assert answer["trigger"] == "ci:jenkins"
    assert answer["outcome"] == "started"
    job = answer["job"]
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v3 to staging" in p.message for p in posts)
    )
    [head] = [p for p in typetalk_api.posts if p.reply_to is None]
    assert "ci:jenkins: deploy api to staging at v3" in head.message
    assert build in head.message
    thread = typetalk_api.replies_to(head.id)
    assert f"job J{job} started by ci:jenkins" in thread[0].message
    # The same announcement and result in Slack, through the same notifier.
    await slack_api.wait_for(
        lambda: any("deployed api v3 to staging" in p.text for p in slack_api.posted)
    )
    slack_head = next(p for p in slack_api.posted if "ci:jenkins: deploy api" in p.text)
    assert slack_head.channel == "C0DEMO"
    assert slack_head.thread_ts is None
    result = next(p for p in slack_api.posted if "deployed api v3 to staging" in p.text)
    assert result.thread_ts == slack_head.ts


async def test_ci_asking_for_what_it_may_not_deploy_is_refused_with_a_reason(
    kajitori: Kajitori, typetalk_api: TypetalkApi, slack_api: FakeSlack
) -> None:

    status, answer = await kajitori.ci(
        "jenkins", {"service": "web", "env": "staging", "version": "v2"}
    )
    assert status == 403
    assert answer == {
        "error": "ci:jenkins may not deploy web to staging (it may deploy: api staging)",
        "allowed": ["api staging"],
    }
    status, answer = await kajitori.ci(
        "jenkins", {"service": "api", "env": "production", "version": "v2"}
    )
    assert status == 403
    assert "may not deploy api to production" in answer["error"]
    assert typetalk_api.posts == []
    assert slack_api.posted == []


async def test_ci_requests_failing_a_check_get_a_clear_4xx_and_run_nothing(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    good: dict[str, Any] = {"service": "api", "env": "staging", "version": "v2"}

    status, answer = await kajitori.ci("jenkins", good, signature=sign("guess", b"x"))
    assert (status, answer) == (401, {"error": "signature check failed (X-Kajitori-Signature-256)"})
    status, _ = await kajitori.ci("circleci", good, signature=sign(CI_SECRET, b"x"))
    assert status == 401  # no secret for that name: nothing it signs is accepted

    for body, problem in (
        ({**good, "version": "v2 --yes"}, "version: not an image tag"),
        ({"service": "api", "env": "staging"}, "version: Field required"),
        ({**good, "colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({**good, "url": "javascript:alert(1)"}, "url: not an http(s) URL"),
    ):
        status, answer = await kajitori.ci("jenkins", body)
        assert status == 400, body
        assert answer["error"].startswith(problem), answer
    raw = b"version=v2"
    status, answer = await kajitori.request(
        "/webhooks/ci/jenkins", raw, {"X-Kajitori-Signature-256": sign(CI_SECRET, raw)}
    )
    assert status == 400
    assert answer["error"].startswith("the body is not JSON")
    assert typetalk_api.posts == []

    # Allowed, but refused by the deploy's own check: 409, and said in the channels.
    status, answer = await kajitori.ci("jenkins", {**good, "version": "v9"})
    assert status == 409
    assert answer["outcome"] == "refused"
    assert "image tag 'v9' is not in ECR" in answer["message"]
    refusal = await typetalk_api.wait_for_posts(
        lambda posts: any("is not in ECR" in p.message for p in posts)
    )
    assert json.dumps([p.message for p in refusal]).count("is not in ECR") == 1
