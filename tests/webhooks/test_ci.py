"""A CI's signed request into the real `kajitori serve`; results to Slack and Typetalk."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.fake_slack import FakeSlack
from tests.support.typetalk_api import TypetalkApi
from tests.webhooks.conftest import (
    CI_SECRET,
    RELEASES_TOPIC,
    Kajitori,
    ci_headers,
    module_server,
    sign,
)

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

    status, answer = await kajitori.ci("jenkins", good, secret="guess")
    assert status == 401
    assert answer["error"].startswith("signature check failed (X-Kajitori-Signature-256 must be")
    status, _ = await kajitori.ci("circleci", good)
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
    status, answer = await kajitori.request("/webhooks/ci/jenkins", raw, ci_headers(raw))
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


async def test_the_old_body_only_signature_is_refused_with_what_to_send_instead(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    body = json.dumps({"service": "api", "env": "staging", "version": "v2"}).encode()
    old = {"Content-Type": "application/json", "X-Kajitori-Signature-256": sign(CI_SECRET, body)}

    status, answer = await kajitori.request("/webhooks/ci/jenkins", body, old)
    assert status == 401
    assert "missing or malformed X-Kajitori-Timestamp" in answer["error"]
    # With a timestamp, a signature over the body alone still does not match.
    stamped = {**old, "X-Kajitori-Timestamp": str(int(time.time()))}
    status, answer = await kajitori.request("/webhooks/ci/jenkins", body, stamped)
    assert status == 401
    assert '"v1:" + timestamp + ":" + body' in answer["error"]
    for stamp in ("soon", "-5", "²", "9" * 5000):
        status, answer = await kajitori.request(
            "/webhooks/ci/jenkins", body, {**ci_headers(body), "X-Kajitori-Timestamp": stamp}
        )
        assert status == 401, stamp
    assert typetalk_api.posts == []


async def test_a_stale_or_future_timestamp_is_refused_even_when_signed(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    good = {"service": "api", "env": "staging", "version": "v2"}
    now = int(time.time())

    for stamp in (now - 6 * 60, now + 6 * 60, 1):
        status, answer = await kajitori.ci("jenkins", good, timestamp=stamp)
        assert status == 401, stamp
        assert "outside the 5-minute window" in answer["error"]
    assert typetalk_api.posts == []
    assert "outside the 5-minute window" in kajitori.serve.log()


async def test_one_captured_request_sent_four_times_with_fresh_delivery_ids_runs_one_deploy(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    # What a CI log or a proxy shows: one signed request, headers and body.
    body = json.dumps({"service": "api", "env": "staging", "version": "v3"}).encode()
    captured = ci_headers(body)

    answers = [
        await kajitori.request(
            "/webhooks/ci/jenkins", body, {**captured, "X-Kajitori-Delivery": f"attempt-{n}"}
        )
        for n in range(4)
    ]

    assert answers[0][0] == 202
    assert answers[0][1]["outcome"] == "started"
    for n, answer in enumerate(answers[1:], start=1):
        assert answer == (
            200,
            {
                "delivery": f"attempt-{n}",
                "duplicate": True,
                "message": "already handled (same signed request)",
            },
        )
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v3 to staging" in p.message for p in posts)
    )
    assert len([p for p in typetalk_api.posts if "started by ci:jenkins" in p.message]) == 1
    # Without any delivery id, a replay is the same signed request all the same.
    status, answer = await kajitori.request("/webhooks/ci/jenkins", body, captured)
    assert (status, answer["duplicate"]) == (200, True)


async def test_a_retry_with_the_same_delivery_id_runs_once_and_a_new_request_runs_again(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    good = {"service": "api", "env": "staging", "version": "v2"}

    first = await kajitori.ci("jenkins", good, delivery="build-77", timestamp=int(time.time()))
    # The CI retries, signing again: a new timestamp, the same delivery id.
    retry = await kajitori.ci("jenkins", good, delivery="build-77", timestamp=int(time.time()) + 1)

    assert first[0] == 202
    assert retry == (
        200,
        {
            "delivery": "build-77",
            "duplicate": True,
            "message": "already handled (same delivery id)",
        },
    )
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v2 to staging" in p.message for p in posts)
    )
    # The next build signs its own request: it deploys.
    status, answer = await kajitori.ci("jenkins", {**good, "version": "v3"}, delivery="build-78")
    assert (status, answer["outcome"]) == (202, "started")
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v3 to staging" in p.message for p in posts)
    )


DOCS = Path(__file__).resolve().parents[2] / "docs" / "typetalk-and-webhooks.md"


def documented_ci_examples() -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The CI section's shell lines, GitHub Actions step and CircleCI step, as written."""
    section = DOCS.read_text().split("### Any CI", 1)[1]
    shell = section.split("```sh\n", 1)[1].split("```", 1)[0]
    actions, circleci = (
        yaml.safe_load(block.split("```", 1)[0])[0] for block in section.split("```yaml\n")[1:3]
    )
    return shell, actions, circleci


async def run_script(script: str, kajitori: Kajitori, env: dict[str, str]) -> dict[str, Any]:
    # Pointed at this server and at its one CI trigger (`jenkins`), which has the secret.
    script = script.replace("https://HOST", kajitori.serve.url)
    for name in ("github-actions", "circleci"):
        script = script.replace(f"/webhooks/ci/{name}", "/webhooks/ci/jenkins")
    process = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        script,
        env={"PATH": os.environ["PATH"], **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, (script, err.decode())
    answer: dict[str, Any] = json.loads(out)
    return answer


async def test_the_documented_shell_github_actions_and_circleci_steps_sign_correctly(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    shell, actions, circleci = documented_ci_examples()

    answer = await run_script(
        shell,
        kajitori,
        {"KAJITORI_CI_SECRET_JENKINS": CI_SECRET, "BUILD_URL": "https://ci.example.com/job/7/"},
    )
    assert answer["outcome"] == "started", answer
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v2 to staging" in p.message for p in posts)
    )

    assert actions["env"]["SECRET"] == "${{ secrets.KAJITORI_CI_SECRET }}"
    github_env = {
        "SECRET": CI_SECRET,
        "VERSION": "v3",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_RUN_ID": "9001",
        "GITHUB_RUN_ATTEMPT": "1",
    }
    answer = await run_script(actions["run"], kajitori, github_env)
    assert answer["outcome"] == "started", answer
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v3 to staging" in p.message for p in posts)
    )
    assert any(
        "https://github.com/acme/api/actions/runs/9001" in p.message for p in typetalk_api.posts
    )

    circle_env = {
        "KAJITORI_CI_SECRET": CI_SECRET,
        "CIRCLE_TAG": "v2",
        "CIRCLE_SHA1": "0" * 40,
        "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/api/12",
        "CIRCLE_WORKFLOW_JOB_ID": "5a1b",
    }
    answer = await run_script(circleci["run"]["command"], kajitori, circle_env)
    assert answer["outcome"] == "started", answer
    assert answer["command"] == "deploy api staging v2"
    await typetalk_api.wait_for_posts(
        lambda posts: len([p for p in posts if "deployed api v2 to staging" in p.message]) == 2
    )
