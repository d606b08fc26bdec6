"""GitHub releases deploying to a protected environment: a human approves, unless the
trigger's config says `approved: true`."""

from __future__ import annotations

import pytest

from tests.support.typetalk_api import TypetalkApi
from tests.webhooks.conftest import (
    MEMBER,
    RELEASES_TOPIC,
    Kajitori,
    announcement,
    has,
    module_server,
    release_payload,
    release_trigger,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("fresh_world")]
kajitori = module_server(
    [
        release_trigger(env="production", tag="v2"),
        release_trigger(env="production", tag="v3", approved=True),
    ]
)


async def test_protected_environment_waits_for_a_human_approval(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    status, answer = await kajitori.github("release", release_payload("v2"), "d-prod")

    assert status == 202
    [deploy] = answer["deploys"]
    assert deploy["outcome"] == "pending"
    request_id = deploy["request"]
    head = announcement(typetalk_api)
    [ask] = typetalk_api.replies_to(head.id)
    assert f"needs approval: request R{request_id} by {MEMBER}" in ask.message
    _, answer = await kajitori.typetalk("alice", "@kajitori+ status api production", 804)
    assert "version: v1 (sha256:" in answer["message"]  # nothing deployed yet

    _, answer = await kajitori.typetalk("bob", f"@kajitori+ approve {request_id}", 805)
    assert "approved by typetalk:bob" in answer["message"]

    await typetalk_api.wait_for_posts(has("deployed api v2 to production"))
    # Progress and result land in the trigger's thread, not in the approver's topic.
    thread = typetalk_api.replies_to(head.id)
    assert f"started by {MEMBER}" in thread[1].message
    assert "deployed api v2 to production" in thread[-1].message
    assert all(p.topic == RELEASES_TOPIC for p in typetalk_api.posts)


async def test_trigger_approved_in_its_config_deploys_to_production_at_once(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    status, answer = await kajitori.github("release", release_payload("v3"), "d-approved")

    assert status == 202
    [deploy] = answer["deploys"]
    assert deploy["outcome"] == "started"
    assert "approved by trigger config" in deploy["message"]
    await typetalk_api.wait_for_posts(has("deployed api v3 to production"))
    assert not any("needs approval" in p.message for p in typetalk_api.posts)
