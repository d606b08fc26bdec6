"""Slack, as far as kajitori sees it: a Web API that records what the bot posts, and a client
that sends signed requests to `kajitori serve` the way Slack does."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from tests.support.recorder import Recorded, RecordingApi

TEAM = "T0DEMO"
CHANNEL = "C0DEMO"
BOT_USER = "UKAJITORI"
COMMAND = "/ops"


@dataclass
class Posted:
    """A chat.postMessage the bot made, with the ts the fake Slack gave it."""

    ts: str
    channel: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]]

    def block_text(self) -> str:
        return json.dumps(self.blocks, ensure_ascii=False)


# Slack's published limits (https://api.slack.com/docs/rate-limits): per method per app per
# workspace, Tier 2 20+ a minute, Tier 3 50+, Tier 4 100+ ("generous burst behavior");
# chat.postMessage is special: about 1 a second per channel, short bursts allowed.
METHOD_TIERS = {
    "chat.update": 50.0,
    "chat.postEphemeral": 100.0,
    "conversations.open": 50.0,
    "files.getUploadURLExternal": 20.0,
    "files.completeUploadExternal": 20.0,
}


@dataclass
class _Bucket:
    rate: float  # per second
    burst: float
    tokens: float
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when a request may go now, else the seconds until it may (Retry-After)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class SlackLimits:
    """The limits the stand-in enforces: Slack's published ones, `speed` times faster."""

    speed: float = 1.0
    post_burst: float = 5.0  # chat.postMessage per channel
    tier_burst_seconds: float = 10.0  # a tier method may burst this many seconds' worth

    def post_bucket(self) -> _Bucket:
        return _Bucket(self.speed, self.post_burst, self.post_burst)

    def tier_bucket(self, per_minute: float) -> _Bucket:
        rate = per_minute / 60 * self.speed
        burst = max(rate * self.tier_burst_seconds, 1.0)
        return _Bucket(rate, burst, burst)


class FakeSlack:
    """A RecordingApi answering the Web API methods kajitori calls; with `limits`, it answers
    429 with Retry-After beyond Slack's rate limits, as Slack does."""

    def __init__(self, limits: SlackLimits | None = None) -> None:
        self.api = RecordingApi()
        self.posted: list[Posted] = []
        # Channels the bot is not a member of: chat.postMessage answers `not_in_channel`.
        self.not_member_of: set[str] = set()
        self._ts = itertools.count(1)
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}
        self.rate_limited: list[tuple[float, str]] = []  # (when, method or channel)
        self._files = itertools.count(1)
        self.api.responders.update(
            {
                "/api/auth.test": lambda _r: {
                    "ok": True,
                    "url": "https://demo.slack.com/",
                    "team": "demo",
                    "user": "kajitori",
                    "team_id": TEAM,
                    "user_id": BOT_USER,
                    "bot_id": "BKAJITORI",
                },
                "/api/chat.postMessage": self._post_message,
                "/api/chat.postEphemeral": lambda _r: {"ok": True, "message_ts": self._next_ts()},
                "/api/chat.update": lambda r: {
                    "ok": True,
                    "channel": _args(r).get("channel"),
                    "ts": _args(r).get("ts"),
                },
                # A DM's channel id with the user: D + the user id, as stable as Slack's.
                "/api/conversations.open": lambda r: {
                    "ok": True,
                    "channel": {"id": f"D{_args(r).get('users')}"},
                },
                # files.upload v2: an upload URL (here), the upload, then completion.
                "/api/files.getUploadURLExternal": self._upload_url,
                "/api/files.completeUploadExternal": lambda r: {
                    "ok": True,
                    "files": _blocks(_args(r).get("files")),
                },
            }
        )

        if limits is not None:
            for path, responder in list(self.api.responders.items()):
                self.api.responders[path] = self._limited(path.removeprefix("/api/"), responder)

    def _limited(self, method: str, responder: Any) -> Any:
        def answer(request: Recorded) -> Any:
            wait = self._wait(method, request)
            if wait > 0:
                self.rate_limited.append((time.monotonic(), method))
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    # Slack says whole seconds; a stand-in sped up says the scaled wait.
                    headers={"Retry-After": _seconds(wait, self.limits)},
                )
            return responder(request)

        return answer

    def _wait(self, method: str, request: Recorded) -> float:
        assert self.limits is not None
        if method == "chat.postMessage":
            key = f"chat.postMessage:{_args(request).get('channel')}"
            bucket = self._buckets.get(key) or self._buckets.setdefault(
                key, self.limits.post_bucket()
            )
        elif method in METHOD_TIERS:
            bucket = self._buckets.get(method) or self._buckets.setdefault(
                method, self.limits.tier_bucket(METHOD_TIERS[method])
            )
        else:
            return 0.0
        return bucket.take()

    async def start(self) -> FakeSlack:
        await self.api.start()
        return self

    async def stop(self) -> None:
        await self.api.stop()

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def api_url(self) -> str:
        return f"{self.api.url}/api/"

    def _next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def _upload_url(self, _request: Recorded) -> dict[str, Any]:
        file_id = f"F{next(self._files)}"
        return {"ok": True, "upload_url": f"{self.api.url}/upload/{file_id}", "file_id": file_id}

    def uploads(self) -> list[bytes]:
        """The content of every file uploaded (files.upload v2's second step)."""
        return [r.body for r in self.api.requests if r.path.startswith("/upload/")]

    def _post_message(self, request: Recorded) -> dict[str, Any]:
        args = _args(request)
        if args.get("channel") in self.not_member_of:
            return {"ok": False, "error": "not_in_channel"}
        ts = self._next_ts()
        self.posted.append(
            Posted(
                ts=ts,
                channel=str(args.get("channel")),
                thread_ts=args.get("thread_ts"),
                text=str(args.get("text", "")),
                blocks=_blocks(args.get("blocks")),
            )
        )
        return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": {"ts": ts}}

    # what the bot did

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [_args(r) for r in self.api.calls(f"/api/{method}")]

    def hook_posts(self, hook: str | None = None) -> list[dict[str, Any]]:
        """JSON bodies posted to response_urls (all, or one hook's)."""
        prefix = f"/hooks/{hook}" if hook else "/hooks/"
        return [r.json for r in self.api.requests if r.path.startswith(prefix)]

    def said(self) -> list[str]:
        """The text of everything said in channels: posts, and answers through response_urls
        that everyone sees (`in_channel`)."""
        hooks = [
            str(body.get("text", ""))
            for body in self.hook_posts()
            if body.get("response_type") == "in_channel"
        ]
        return [p.text for p in self.posted] + hooks

    def in_channel_answers(self) -> list[dict[str, Any]]:
        """Answers to slash commands posted through their response_url for everyone to see."""
        return [b for b in self.hook_posts() if b.get("response_type") == "in_channel"]

    def heads(self) -> list[Posted]:
        """Messages that start a job's thread: top-level, with a status line."""
        return [
            p for p in self.posted if p.thread_ts is None and "kajitori_status" in p.block_text()
        ]

    def in_thread(self, ts: str) -> list[Posted]:
        return [p for p in self.posted if p.thread_ts == ts]

    def updates_of(self, ts: str) -> list[dict[str, Any]]:
        return [u for u in self.calls("chat.update") if u.get("ts") == ts]

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        await self.api.wait_for(lambda _requests: predicate(), timeout=timeout)


def _seconds(wait: float, limits: SlackLimits | None) -> str:
    if limits is None or limits.speed == 1:
        return str(max(1, round(wait)))
    return f"{wait:.3f}"


def _args(request: Recorded) -> dict[str, Any]:
    if request.json is not None:
        return dict(request.json)
    return dict(request.form) or dict(request.query)


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


class SlackSender:
    """Sends requests to /slack/events signed with the app's signing secret, like Slack."""

    def __init__(self, url: str, secret: str, hooks_url: str) -> None:
        self.url = f"{url}/slack/events"
        self.secret = secret
        self.hooks_url = hooks_url
        self._ids = itertools.count(1)

    def sign(
        self, body: str, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        verifier = SignatureVerifier(secret or self.secret)
        return {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(verifier.generate_signature(timestamp=stamp, body=body)),
        }

    async def send(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        retry: int | None = None,
    ) -> tuple[int, str]:
        sent = {"Content-Type": content_type, **(headers or self.sign(body))}
        if retry is not None:
            sent |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self.url, data=body.encode(), headers=sent) as response,
        ):
            return response.status, await response.text()

    def slash_body(
        self, text: str, user: str = "U0ALICE", channel: str = CHANNEL
    ) -> dict[str, str]:
        n = next(self._ids)
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "demo",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": COMMAND,
            "text": text,
            "api_app_id": "A0KAJITORI",
            "is_enterprise_install": "false",
            "response_url": f"{self.hooks_url}/hooks/command-{n}",
            "trigger_id": f"{n}.1234567890.trigger{n:04d}",
        }

    async def slash(self, text: str, user: str = "U0ALICE", **kwargs: Any) -> tuple[int, str]:
        return await self.send_form(self.slash_body(text, user), **kwargs)

    async def send_form(self, body: dict[str, str], **kwargs: Any) -> tuple[int, str]:
        return await self.send(urlencode(body), "application/x-www-form-urlencoded", **kwargs)

    def mention_body(
        self, text: str, user: str = "U0ALICE", thread_ts: str | None = None
    ) -> dict[str, Any]:
        n = next(self._ids)
        ts = f"{1_699_000_000 + n}.000200"
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER}> {text}",
            "ts": ts,
            "channel": CHANNEL,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": "A0KAJITORI",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{n:08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
        }

    async def send_json(self, body: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        return await self.send(json.dumps(body), "application/json", **kwargs)

    def click_body(self, message: Posted, action_id: str, user: str) -> dict[str, Any]:
        n = next(self._ids)
        actions = next(b for b in message.blocks if b.get("type") == "actions")
        button = next(e for e in actions["elements"] if e["action_id"] == action_id)
        message_json: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER,
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks,
        }
        if message.thread_ts:
            message_json["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "api_app_id": "A0KAJITORI",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"{n}.1234567890.click{n:04d}",
            "team": {"id": TEAM, "domain": "demo"},
            "channel": {"id": message.channel, "name": "ops"},
            "message": message_json,
            "response_url": f"{self.hooks_url}/hooks/click-{n}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": actions["block_id"],
                    "text": button["text"],
                    "value": button["value"],
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    async def click(self, message: Posted, action_id: str, user: str) -> tuple[int, str]:
        body = self.click_body(message, action_id, user)
        return await self.send_form({"payload": json.dumps(body)})
