"""A local HTTP server standing in for Typetalk's API: it answers `POST /api/v1/topics/{id}`
as Typetalk does (the new post, with an id) and `GET /api/v1/topics/{id}/members/status`
(the accounts of `members`), and refuses what Typetalk refuses: a wrong `X-Typetalk-Token`
(401) and a message over 4,000 characters (400)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.recorder import Recorded, RecordingApi

TOPIC_PATH = "/api/v1/topics/"
MEMBERS_SUFFIX = "/members/status"
MAX_CHARS = 4000


@dataclass(frozen=True)
class TypetalkPost:
    id: int
    topic: int
    message: str
    reply_to: int | None


class TypetalkApi(RecordingApi):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.posts: list[TypetalkPost] = []
        self._ids = itertools.count(1001)
        # Every topic's members: account id -> account name.
        self.members: dict[int, str] = {}

    async def start(self) -> TypetalkApi:
        await super().start()
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(TOPIC_PATH) and request.path.endswith(MEMBERS_SUFFIX):
            self.responders.setdefault(request.path, self._topic_members)
        elif request.path.startswith(TOPIC_PATH):
            self.responders.setdefault(request.path, self._post_message)
        return await super()._handle(request)

    def _topic_members(self, recorded: Recorded) -> Any:
        if recorded.headers.get("X-Typetalk-Token") != self.token:
            return web.json_response({"error": "invalid_token"}, status=401)
        return {
            "accounts": [
                {"account": {"id": i, "name": name, "isBot": False}, "online": True}
                for i, name in self.members.items()
            ],
            "invites": [],
        }

    def _post_message(self, recorded: Recorded) -> Any:
        if recorded.headers.get("X-Typetalk-Token") != self.token:
            return web.json_response({"error": "invalid_token"}, status=401)
        topic = recorded.path.removeprefix(TOPIC_PATH)
        fields = recorded.json if isinstance(recorded.json, dict) else recorded.form
        message = fields.get("message")
        if not topic.isdigit() or not isinstance(message, str) or not message:
            return web.json_response({"error": "invalid_request"}, status=400)
        if len(message) > MAX_CHARS:
            return web.json_response({"error": "message is too long"}, status=400)
        reply_to = fields.get("replyTo")
        post = TypetalkPost(
            id=next(self._ids),
            topic=int(topic),
            message=message,
            reply_to=int(reply_to) if reply_to is not None else None,
        )
        self.posts.append(post)
        return {
            "topic": {"id": post.topic},
            "post": {
                "id": post.id,
                "topicId": post.topic,
                "replyTo": post.reply_to,
                "message": post.message,
            },
        }

    def in_topic(self, topic: int) -> list[TypetalkPost]:
        return [p for p in self.posts if p.topic == topic]

    def replies_to(self, post_id: int) -> list[TypetalkPost]:
        return [p for p in self.posts if p.reply_to == post_id]

    async def wait_for_posts(
        self, predicate: Callable[[list[TypetalkPost]], bool], timeout: float = 30.0
    ) -> list[TypetalkPost]:
        try:
            await self.wait_for(lambda _requests: predicate(self.posts), timeout)
        except TimeoutError:
            shown = "\n".join(f"{p.id} ->{p.reply_to} [{p.topic}] {p.message}" for p in self.posts)
            raise AssertionError(
                f"the expected Typetalk posts did not come; posted:\n{shown}"
            ) from None
        return self.posts
