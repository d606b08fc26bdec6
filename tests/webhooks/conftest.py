"""The real `kajitori serve` with Typetalk's and Slack's APIs standing in on loopback, the
AWS sandbox over HTTP, and helpers that sign requests as GitHub, a CI and Typetalk do."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import demo_data
from tests.support.fake_slack import FakeSlack
from tests.support.serve import ServeProcess
from tests.support.typetalk_api import TypetalkApi, TypetalkPost

FIXTURES = Path(__file__).parent / "fixtures" / "github"
# GitHub's documented test vector for X-Hub-Signature-256 ("Validating webhook deliveries"):
# the tests' server uses its secret.
GITHUB_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
TYPETALK_SECRET = "tt-shared-webhook-secret"
TYPETALK_TOKEN = "tt-bot-token-0123456789"
CI_SECRET = "jenkins-signing-secret"
SLACK_BOT_TOKEN = "xoxb-0000000000-2222222222-kajitoriwebhooktests"
SECRETS = (GITHUB_SECRET, TYPETALK_SECRET, TYPETALK_TOKEN, CI_SECRET, SLACK_BOT_TOKEN)

# Topics the triggers announce in, and the topic people type in.
# Typetalk account ids of the people the tests post as; anyone else posts as MALLORY_ID.
ACCOUNT_IDS = {"alice": 101, "bob": 102, "carol": 103}
MALLORY_ID = 666
PEOPLE_TOPIC = 1
RELEASES_TOPIC = 7


def sign(secret: str, body: bytes) -> str:
    """GitHub's signature: HMAC-SHA256 of the body alone."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def ci_headers(
    body: bytes, *, secret: str = CI_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """A CI's headers, signed as the docs say: HMAC-SHA256 of `v1:` + timestamp + `:` + body."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v1:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Kajitori-Timestamp": stamp,
        "X-Kajitori-Signature-256": f"sha256={digest}",
    }


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


FIXTURE_RELEASE_ID = 17372790
_release_ids = itertools.count(FIXTURE_RELEASE_ID + 1)


def release_payload(tag: str) -> bytes:
    """GitHub's `release published` example, byte for byte but for the tag it names and the
    release's id: each call is another release, as each of GitHub's deliveries differs."""
    body = fixture_bytes("release-published.payload.json")
    release_id = str(next(_release_ids)).encode()
    return (
        body.replace(b'"0.0.1"', json.dumps(tag).encode())
        .replace(b"/tag/0.0.1", f"/tag/{tag}".encode())
        .replace(b'"id": 17372790,', b'"id": ' + release_id + b",")
    )


def fixture_repo(name: str = "release-published.payload.json") -> str:
    repo: str = json.loads(fixture_bytes(name))["repository"]["full_name"]
    return repo


REPO = fixture_repo()
MEMBER = f"github:{REPO}"


def release_trigger(env: str = "staging", tag: str = "v*", **more: Any) -> dict[str, Any]:
    """A trigger deploying api when a release of GitHub's example repository is published."""
    return {
        "github": {"repo": REPO, "on": "release", "tag": tag},
        "deploy": {"service": "api", "env": env},
        "channels": [f"typetalk:topic/{RELEASES_TOPIC}"],
        **more,
    }


def announcement(api: TypetalkApi) -> TypetalkPost:
    """The one post a trigger started its thread with in the releases topic."""
    heads = [p for p in api.in_topic(RELEASES_TOPIC) if p.reply_to is None]
    assert len(heads) == 1, heads
    return heads[0]


def has(text: str) -> Callable[[list[TypetalkPost]], bool]:
    return lambda posts: any(text in p.message for p in posts)


class Kajitori:
    """The running server and ways to call it as its callers do."""

    def __init__(self, serve: ServeProcess, session: aiohttp.ClientSession) -> None:
        self.serve = serve
        self.session = session

    async def request(
        self, path: str, body: bytes, headers: dict[str, str], **kwargs: Any
    ) -> tuple[int, Any]:
        async with self.session.post(
            self.serve.url + path, data=body, headers=headers, **kwargs
        ) as response:
            text = await response.text()
            assert response.content_type == "application/json", (response.status, text)
            return response.status, json.loads(text) if text else None

    async def github(
        self,
        event: str,
        body: bytes,
        delivery: str,
        signature: str | None = None,
    ) -> tuple[int, Any]:
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature or sign(GITHUB_SECRET, body),
            "User-Agent": "GitHub-Hookshot/test",
        }
        return await self.request("/webhooks/github", body, headers)

    async def ci(
        self,
        name: str,
        payload: dict[str, Any],
        *,
        secret: str = CI_SECRET,
        timestamp: int | None = None,
        delivery: str | None = None,
    ) -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        headers = ci_headers(body, secret=secret, timestamp=timestamp)
        if delivery is not None:
            headers["X-Kajitori-Delivery"] = delivery
        return await self.request(f"/webhooks/ci/{name}", body, headers)

    async def typetalk(
        self,
        account: str,
        message: str,
        post_id: int,
        *,
        topic: int = PEOPLE_TOPIC,
        token: str | None = TYPETALK_SECRET,
        headers: dict[str, str] | None = None,
        account_id: int | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        body = json.dumps(
            typetalk_delivery(account, message, post_id, topic, account_id=account_id)
        ).encode()
        params = {"token": token} if token is not None else {}
        headers = {"Content-Type": "application/json", **(headers or {})}
        return await self.request("/typetalk/webhook", body, headers, params=params, **kwargs)


def typetalk_delivery(
    account: str, message: str, post_id: int, topic: int, *, account_id: int | None = None
) -> dict[str, Any]:
    """A Typetalk outgoing webhook body, shaped as in Typetalk's documentation; the account's
    id is its ACCOUNT_IDS entry unless given."""
    if account_id is None:
        account_id = ACCOUNT_IDS.get(account, MALLORY_ID)
    return {
        "topic": {
            "id": topic,
            "name": "ops",
            "suggestion": "ops",
            "lastPostedAt": "2024-05-01T09:00:29Z",
            "createdAt": "2024-01-10T02:32:29Z",
            "updatedAt": "2024-01-10T02:32:29Z",
        },
        "post": {
            "id": post_id,
            "topicId": topic,
            "replyTo": None,
            "message": message,
            "account": {
                "id": account_id,
                "name": account,
                "fullName": account.title(),
                "suggestion": account.title(),
                "imageUrl": "https://typetalk.com/accounts/100/profile_image.png",
                "createdAt": "2024-01-24T02:32:29Z",
                "updatedAt": "2024-01-24T02:32:29Z",
            },
            "mention": None,
            "attachments": [],
            "likes": [],
            "talks": [],
            "links": [],
            "createdAt": "2024-05-01T09:00:29Z",
            "updatedAt": "2024-05-01T09:00:29Z",
        },
    }


def webhook_config(tmp_path: Path, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    config = demo_data()
    config["store"] = f"sqlite:///{tmp_path}/state.db"
    config["access"]["members"].update(
        {"typetalk:alice": ["developer"], "typetalk:bob": ["sre"], "typetalk:carol": ["sre"]}
    )
    config["triggers"] = triggers
    return config


StartKajitori = Callable[[list[dict[str, Any]]], Awaitable[Kajitori]]


@contextlib.asynccontextmanager
async def serving(
    triggers: list[dict[str, Any]],
    *,
    folder: Path,
    sandbox_url: str,
    typetalk_api: TypetalkApi,
    slack_api: FakeSlack,
    session: aiohttp.ClientSession,
) -> AsyncIterator[Kajitori]:
    """`kajitori serve` with the demo config plus `triggers`, and every secret set."""
    env = {
        "AWS_ENDPOINT_URL": sandbox_url,
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "TYPETALK_WEBHOOK_SECRET": TYPETALK_SECRET,
        "TYPETALK_TOKEN": TYPETALK_TOKEN,
        "TYPETALK_API_URL": typetalk_api.url,
        "SLACK_API_URL": slack_api.api_url,
        "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
        "KAJITORI_CI_SECRET_JENKINS": CI_SECRET,
    }
    serve = ServeProcess(webhook_config(folder, triggers), env, folder)
    try:
        await serve.start()
        yield Kajitori(serve, session)
    finally:
        await serve.stop()
    # Nothing secret may reach the logs.
    log = serve.log()
    assert not [secret for secret in SECRETS if secret in log]


# The stand-ins and a server live as long as a test module, so that the tests sharing a
# config share one `kajitori serve`; each test starts from a fresh sandbox and recordings.


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def typetalk_api() -> AsyncIterator[TypetalkApi]:
    api = await TypetalkApi(TYPETALK_TOKEN).start()
    # The topic's members as Typetalk lists them: mallory is not one.
    api.members = {i: name for name, i in ACCOUNT_IDS.items()}
    try:
        yield api
    finally:
        await api.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack_api() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack().start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def fresh_world(sandbox: Any, typetalk_api: TypetalkApi, slack_api: FakeSlack) -> None:
    """The demo sandbox as seeded, and nothing recorded yet."""
    typetalk_api.posts.clear()
    typetalk_api.requests.clear()
    slack_api.posted.clear()
    slack_api.api.requests.clear()


def module_server(
    triggers: list[dict[str, Any]],
) -> Callable[..., AsyncIterator[Kajitori]]:
    """A module's shared `kajitori` fixture, serving the demo config plus `triggers`."""

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def kajitori(
        sandbox_server: Any,
        typetalk_api: TypetalkApi,
        slack_api: FakeSlack,
        http: aiohttp.ClientSession,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[Kajitori]:
        folder = tmp_path_factory.mktemp("serve")
        async with serving(
            triggers,
            folder=folder,
            sandbox_url=sandbox_server.url,
            typetalk_api=typetalk_api,
            slack_api=slack_api,
            session=http,
        ) as server:
            yield server

    return kajitori


@pytest_asyncio.fixture(loop_scope="module")
async def start_kajitori(
    sandbox: Any,
    typetalk_api: TypetalkApi,
    slack_api: FakeSlack,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> AsyncIterator[StartKajitori]:
    """A server of the test's own, for a config no other test shares."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(triggers: list[dict[str, Any]]) -> Kajitori:
            return await stack.enter_async_context(
                serving(
                    triggers,
                    folder=tmp_path,
                    sandbox_url=sandbox.url,
                    typetalk_api=typetalk_api,
                    slack_api=slack_api,
                    session=http,
                )
            )

        yield start
