"""GitHub deliveries, signed as GitHub signs them, into the real `kajitori serve`."""

from __future__ import annotations

import json

import pytest

from tests.support.typetalk_api import TypetalkApi
from tests.webhooks.conftest import (
    GITHUB_SECRET,
    MEMBER,
    RELEASES_TOPIC,
    REPO,
    VECTOR_BODY,
    VECTOR_SIGNATURE,
    Kajitori,
    announcement,
    fixture_bytes,
    fixture_repo,
    has,
    module_server,
    release_payload,
    release_trigger,
    sign,
)

PUSH_REPO = fixture_repo("push-with-new-branch.payload.json")
PUSH_TRIGGER = {
    "github": {"repo": PUSH_REPO, "on": "push", "branch": "mas*", "version": "sha"},
    "deploy": {"service": "api", "env": "staging"},
    "channels": [f"typetalk:topic/{RELEASES_TOPIC}"],
}

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("fresh_world")]
# Releases tagged v* deploy to staging; GitHub's example release (0.0.1) and push too.
kajitori = module_server([release_trigger(), release_trigger(tag="0.0.*"), PUSH_TRIGGER])


async def test_bad_signature_gets_401_and_nothing_runs(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:

    # The documented vector, over the wire: a ping signed so is answered.
    status, answer = await kajitori.github("ping", VECTOR_BODY, "d-ping", VECTOR_SIGNATURE)
    assert (status, answer) == (200, {"ok": True, "event": "ping"})
    status, _ = await kajitori.github("ping", VECTOR_BODY, "d-ping", VECTOR_SIGNATURE[:-1] + "0")
    assert status == 401

    body = release_payload("v2")
    for signature in (
        sign("not the secret", body),
        sign(GITHUB_SECRET, release_payload("v3")),  # signed another body
        "sha1=" + sign(GITHUB_SECRET, body).removeprefix("sha256="),
        "garbage",
    ):
        status, answer = await kajitori.github("release", body, "d-forged", signature)
        assert status == 401
        assert answer == {"error": "signature check failed (X-Hub-Signature-256)"}

    assert typetalk_api.posts == []  # no announcement: the handler refused before anything
    _, answer = await kajitori.typetalk("alice", "@kajitori+ jobs", 801)
    assert "job J1" not in answer["message"]
    # A forged delivery id is not remembered either: the real delivery still runs.
    status, answer = await kajitori.github("release", body, "d-forged")
    assert status == 202
    assert answer["deploys"][0]["outcome"] == "started"
    await typetalk_api.wait_for_posts(has("deployed api v2 to staging"))


async def test_signed_release_starts_a_deploy_whose_result_is_announced(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:

    status, answer = await kajitori.github("release", release_payload("v2"), "d-release-v2")

    assert status == 202
    [deploy] = answer["deploys"]
    assert deploy["trigger"] == MEMBER
    assert deploy["command"] == "deploy api staging v2"
    assert deploy["outcome"] == "started"
    job = deploy["job"]
    await typetalk_api.wait_for_posts(has("deployed api v2 to staging"))
    head = announcement(typetalk_api)
    assert f"{REPO}: release v2 published: deploy api to staging at v2" in head.message
    assert f"https://github.com/{REPO}/releases/tag/v2" in head.message
    thread = typetalk_api.replies_to(head.id)
    assert f"job J{job} started by {MEMBER}" in thread[0].message
    assert "deployed api v2 to staging" in thread[-1].message
    assert thread[-1].message.startswith("✅")
    _, answer = await kajitori.typetalk("alice", "@kajitori+ status api staging", 802)
    assert "version: v2 (sha256:" in answer["message"]


async def test_same_delivery_twice_runs_one_deploy(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    body = release_payload("v2")

    first = await kajitori.github("release", body, "d-twice")
    again = await kajitori.github("release", body, "d-twice")
    await typetalk_api.wait_for_posts(has("deployed api v2 to staging"))
    late = await kajitori.github("release", body, "d-twice")

    assert first[0] == 202
    assert first[1]["deploys"][0]["outcome"] == "started"
    assert again == (
        200,
        {"delivery": "d-twice", "duplicate": True, "message": "already handled (same delivery id)"},
    )
    assert late == again
    announcement(typetalk_api)  # exactly one
    started = [p for p in typetalk_api.posts if "started by" in p.message]
    assert len(started) == 1


async def test_a_captured_release_replayed_under_a_new_delivery_id_deploys_nothing(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    # What anyone who saw a delivery (GitHub's "Recent deliveries", a proxy's log) holds:
    # a validly signed body. GitHub signs no timestamp, so only its digest gives it away.
    captured = release_payload("v3")
    status, answer = await kajitori.github("release", captured, "d-captured")
    assert status == 202
    assert answer["deploys"][0]["outcome"] == "started"
    await typetalk_api.wait_for_posts(has("deployed api v3 to staging"))

    replays = [await kajitori.github("release", captured, f"d-replay-{n}") for n in range(3)]

    for n, replay in enumerate(replays):
        assert replay == (
            200,
            {
                "delivery": f"d-replay-{n}",
                "duplicate": True,
                "message": "already handled (same body, another delivery id)",
            },
        )
    announcement(typetalk_api)  # the first delivery's, and no other
    assert len([p for p in typetalk_api.posts if "started by" in p.message]) == 1
    assert "github delivery d-replay-0 seen before (same body" in kajitori.serve.log()
    # A release published since, with its own body, still deploys.
    status, answer = await kajitori.github("release", release_payload("v2"), "d-next")
    assert answer["deploys"][0]["outcome"] == "started"
    await typetalk_api.wait_for_posts(has("deployed api v2 to staging"))


async def test_deploys_refused_by_their_checks_are_announced_with_the_reason(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    # GitHub's release example as sent: its tag 0.0.1 is not in ECR.
    release = fixture_bytes("release-published.payload.json")
    status, answer = await kajitori.github("release", release, "d-fixture")

    assert status == 202
    [deploy] = answer["deploys"]
    assert deploy["outcome"] == "refused"
    assert "image tag '0.0.1' is not in ECR" in deploy["message"]
    head = announcement(typetalk_api)
    [reason] = typetalk_api.replies_to(head.id)
    assert reason.message.startswith("❌")
    assert "image tag '0.0.1' is not in ECR repository api" in reason.message
    assert "nothing was changed" in reason.message

    # A push deploys its commit sha when the trigger says `version: sha`; images here are
    # tagged by release, so that tag is not in ECR either: refused, and said where it ran.
    push = fixture_bytes("push-with-new-branch.payload.json")
    sha = json.loads(push)["after"]
    status, answer = await kajitori.github("push", push, "d-push")

    assert status == 202
    [deploy] = answer["deploys"]
    assert deploy["command"] == f"deploy api staging {sha}"
    assert deploy["outcome"] == "refused"
    head = [p for p in typetalk_api.in_topic(RELEASES_TOPIC) if p.reply_to is None][-1]
    assert f"{PUSH_REPO}: push to master ({sha[:7]})" in head.message
    assert f"https://github.com/{PUSH_REPO}/commit/{sha}" in head.message
    [reason] = typetalk_api.replies_to(head.id)
    assert f"image tag '{sha}' is not in ECR" in reason.message
    _, answer = await kajitori.typetalk("alice", "@kajitori+ status api staging", 803)
    assert "version: v1 (sha256:" in answer["message"]


async def test_unmatched_or_malformed_deliveries_run_nothing(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:

    created = await kajitori.github(
        "release", fixture_bytes("release-created.payload.json"), "d-created"
    )
    other_tag = await kajitori.github("release", release_payload("nightly-7"), "d-other-tag")
    deleted_tag = await kajitori.github("push", fixture_bytes("push-payload.json"), "d-deleted")
    issue = await kajitori.github("issues", b'{"action": "opened"}', "d-issue")

    assert created == (
        202,
        {"delivery": "d-created", "ignored": ["release created (only `published` deploys)"]},
    )
    assert other_tag == (
        202,
        {
            "delivery": "d-other-tag",
            "ignored": [f"no release trigger matches {REPO} tag nightly-7"],
        },
    )
    assert deleted_tag[0] == 202
    assert deleted_tag[1]["ignored"] == ["the push deleted refs/tags/simple-tag"]
    assert issue == (202, {"delivery": "d-issue", "ignored": ["event issues triggers nothing"]})
    log = kajitori.serve.log()
    assert "github delivery d-created ignored: release created" in log
    assert f"github delivery d-other-tag ignored: no release trigger matches {REPO}" in log

    status, answer = await kajitori.github("release", b"{not json", "d-bad-1")
    assert status == 400
    assert answer["error"].startswith("the body is not JSON")

    status, answer = await kajitori.github("release", b'{"action": "published"}', "d-bad-2")
    assert status == 400
    assert answer["error"] == "release: Field required"

    status, answer = await kajitori.github("push", b'{"ref": 7}', "d-bad-3")
    assert status == 400
    assert answer["error"].startswith("ref: ")

    body = release_payload("v2")
    headers = {"X-Hub-Signature-256": sign(GITHUB_SECRET, body), "X-GitHub-Event": "release"}
    status, answer = await kajitori.request("/webhooks/github", body, headers)
    assert (status, answer) == (400, {"error": "missing header X-GitHub-Delivery"})
    headers = {"X-Hub-Signature-256": sign(GITHUB_SECRET, body), "X-GitHub-Delivery": "d"}
    status, answer = await kajitori.request("/webhooks/github", body, headers)
    assert (status, answer) == (400, {"error": "missing header X-GitHub-Event"})
    form = b"payload=" + body  # a hook left on GitHub's other content type
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Hub-Signature-256": sign(GITHUB_SECRET, form),
        "X-GitHub-Event": "release",
        "X-GitHub-Delivery": "d-form",
    }
    status, answer = await kajitori.request("/webhooks/github", form, headers)
    assert status == 415
    assert "application/json" in answer["error"]
    assert typetalk_api.posts == []


async def test_lock_refuses_a_second_deploy_while_the_first_runs(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:

    _, first = await kajitori.github("release", release_payload("v2"), "d-lock-1")
    _, second = await kajitori.github("release", release_payload("v3"), "d-lock-2")

    assert first["deploys"][0]["outcome"] == "started"
    job = first["deploys"][0]["job"]
    assert second["deploys"][0]["outcome"] == "refused"
    assert f"api/staging is locked by {MEMBER} (job J{job})" in second["deploys"][0]["message"]
    await typetalk_api.wait_for_posts(has("deployed api v2 to staging"))
    heads = [p for p in typetalk_api.in_topic(RELEASES_TOPIC) if p.reply_to is None]
    assert len(heads) == 2
    refusal = typetalk_api.replies_to(heads[1].id)
    assert "is locked by" in refusal[0].message
