"""Typetalk: a bot's outgoing webhook in (`POST /typetalk/webhook`), Typetalk's API out.

A mention (`@kajitori+ status api staging`) runs as member `typetalk:<numeric account id>`
in channel `typetalk:topic/<id>`. The config may name a Typetalk account by its name instead
(`typetalk:alice`): such an alias is resolved through the topic's members as Typetalk's API
lists them (`GET /api/v1/topics/{id}/members/status`, the bot's token), never through the
name in the webhook's body. The webhook's shared secret proves only that a request came
through the bot's webhook URL, not who typed the post. A quick answer goes back in the HTTP response, as a reply to the post;
a job's progress and result are posted with `POST /api/v1/topics/{id}` (the bot's
`X-Typetalk-Token`) as replies to the same post. Typetalk takes at most 4,000 characters per
message, so longer answers are split in numbered parts, and past a few parts shortened with
a note.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import BaseModel, Field, SecretStr

from bot.config import Config, Settings
from bot.kernel import Kernel
from bot.messages import Message, Tone, render_table
from bot.model import Origin

if TYPE_CHECKING:
    from aiohttp import web

    from adapters.triggers.common import WebhookHandler

log = logging.getLogger(__name__)

PATH = "/typetalk/webhook"
MAX_CHARS = 4000  # Typetalk's limit for one message
MAX_PARTS = 5  # past this, an answer is shortened instead of flooding the topic
# Room kept in each part for a code fence closed at the cut, the part number and a note.
_RESERVED = 120
_FENCE = "```"
_CHANNEL = re.compile(r"typetalk:topic/(\d+)")
# How long a topic's member list (for `typetalk:NAME` aliases) is used before it is read again.
MEMBERS_TTL = 300.0
# Tried again, twice: Typetalk says it is busy, or the connection failed before a request.
_RETRY_STATUS = frozenset({429, 502, 503, 504})
_RETRY_DELAYS = (0.5, 2.0)

_MARKS = {
    Tone.SUCCESS: "✅ ",
    Tone.FAILURE: "❌ ",
    Tone.WARNING: "⚠️ ",
    Tone.PROGRESS: "⏳ ",
    Tone.INFO: "",
}


class TypetalkAccount(BaseModel, defer_build=True):
    id: int
    name: str = Field(min_length=1, max_length=200)
    is_bot: bool = Field(default=False, alias="isBot")


class TypetalkPost(BaseModel, defer_build=True):
    id: int
    message: str
    account: TypetalkAccount


class TypetalkTopic(BaseModel, defer_build=True):
    id: int


class TypetalkDelivery(BaseModel, defer_build=True):
    """The outgoing webhook's body (only what the bot reads; Typetalk sends much more)."""

    topic: TypetalkTopic
    post: TypetalkPost


def strip_mention(text: str, bot_name: str) -> str:
    """`@kajitori+ status api staging` -> `status api staging`."""
    return re.sub(rf"@{re.escape(bot_name)}\+", " ", text).strip()


def topic_of(channel: str) -> str:
    match = _CHANNEL.fullmatch(channel)
    if match is None:
        raise ValueError(f"{channel!r} is not a Typetalk channel (typetalk:topic/ID)")
    return match.group(1)


def render(message: Message, bot_name: str) -> str:
    """A message as Typetalk shows it: plain text, tables and files in code blocks."""
    lines = [_MARKS[message.tone] + message.text]
    lines.extend(f"{name}: {value}" for name, value in message.fields.items())
    if message.table is not None:
        lines.extend([_FENCE, render_table(message.table), _FENCE])
    if message.attachment is not None:
        attachment = message.attachment
        lines.extend([f"{attachment.filename}:", _FENCE, attachment.content.rstrip("\n"), _FENCE])
    if message.buttons:
        lines.append("  ".join(f"{b.label}: `@{bot_name}+ {b.typed()}`" for b in message.buttons))
    return "\n".join(lines)


def split_message(text: str, limit: int = MAX_CHARS, max_parts: int = MAX_PARTS) -> list[str]:
    """Parts of at most `limit` characters, cut at line ends (a code block cut in two is
    closed and reopened), numbered `(1/3)`; past `max_parts`, the rest is left out with a note."""
    if len(text) <= limit:
        return [text]
    room = limit - _RESERVED
    parts: list[str] = []
    current: list[str] = []
    size = 0
    fenced = False

    def flush() -> None:
        parts.append("\n".join([*current, _FENCE] if fenced else current))

    for line in text.split("\n"):
        pieces = [line[i : i + room - 8] for i in range(0, len(line), room - 8)] or [""]
        for piece in pieces:
            if current and size + 1 + len(piece) > room:
                flush()
                current, size = ([_FENCE], len(_FENCE)) if fenced else ([], 0)
            size += len(piece) + (1 if current else 0)
            current.append(piece)
        if line.lstrip().startswith(_FENCE):
            fenced = not fenced
    if current:
        flush()
    omitted = sum(len(p) for p in parts[max_parts:])
    parts = parts[:max_parts]
    total = len(parts)
    numbered = [f"{part}\n({n}/{total})" for n, part in enumerate(parts, 1)]
    if omitted:
        numbered[-1] += f"\n… shortened: {omitted} more characters are not shown"
    return numbered


class TypetalkError(Exception):
    """Typetalk's API answered with an error."""


class TypetalkChat:
    """The chat port on Typetalk: posts through the Typetalk API as the bot."""

    name = "typetalk"

    def __init__(
        self,
        api_url: str,
        token: SecretStr | None,
        *,
        bot_name: str = "kajitori",
        timeout: aiohttp.ClientTimeout | None = None,
        retry_delays: tuple[float, ...] = _RETRY_DELAYS,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._token = token
        self.bot_name = bot_name
        self._timeout = timeout or aiohttp.ClientTimeout(total=10, connect=5)
        self._retry_delays = retry_delays
        self._session: aiohttp.ClientSession | None = None
        # Parts of long answers still being posted after the webhook answered.
        self._sending: set[asyncio.Task[None]] = set()
        # By topic: when its members were read, and their names by account id.
        self._members: dict[str, tuple[float, dict[int, str]]] = {}

    @property
    def can_post(self) -> bool:
        return self._token is not None

    async def close(self) -> None:
        if self._sending:
            _done, pending = await asyncio.wait(self._sending, timeout=10)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def post(self, topic: str, text: str, reply_to: str | None = None) -> str | None:
        """Post one message (at most 4,000 characters); the new post's id, if Typetalk says."""
        if self._token is None:
            log.warning("TYPETALK_TOKEN is not set: cannot post to topic %s", topic)
            return None
        payload: dict[str, Any] = {"message": text}
        if reply_to is not None:
            payload["replyTo"] = int(reply_to)
        headers = {"X-Typetalk-Token": self._token.get_secret_value()}
        url = f"{self._api_url}/api/v1/topics/{topic}"
        for delay in (*self._retry_delays, None):
            try:
                async with self._client().post(url, json=payload, headers=headers) as response:
                    busy = response.status in _RETRY_STATUS
                    if response.status >= 400 and not (busy and delay is not None):
                        raise TypetalkError(f"posting to topic {topic}: HTTP {response.status}")
                    answer = None if busy else await response.json(content_type=None)
            except aiohttp.ClientConnectorError:
                # Nothing reached Typetalk, so trying again cannot post twice.
                if delay is None:
                    raise
                busy = True
            if busy and delay is not None:
                await asyncio.sleep(delay)
                continue
            post = answer.get("post") if isinstance(answer, dict) else None
            post_id = post.get("id") if isinstance(post, dict) else None
            return str(post_id) if post_id is not None else None
        raise TypetalkError(f"posting to topic {topic}: Typetalk stayed busy")

    async def account_name(self, topic: str, account_id: int) -> str | None:
        """The name of account `account_id` as the topic's member list on Typetalk's API
        says (read at most every MEMBERS_TTL seconds); None when it is not a member of the
        topic or the list cannot be read (no token, no `topic.read` scope, an error)."""
        if self._token is None:
            return None
        now = time.monotonic()
        cached = self._members.get(topic)
        if cached is None or now - cached[0] > MEMBERS_TTL:
            headers = {"X-Typetalk-Token": self._token.get_secret_value()}
            url = f"{self._api_url}/api/v1/topics/{topic}/members/status"
            try:
                async with self._client().get(url, headers=headers) as response:
                    if response.status >= 400:
                        raise TypetalkError(
                            f"reading the members of topic {topic}: HTTP {response.status}"
                        )
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, TypetalkError, ValueError) as error:
                log.warning("typetalk:NAME aliases cannot be resolved: %s", error)
                return None
            names: dict[int, str] = {}
            for entry in answer.get("accounts", []) if isinstance(answer, dict) else []:
                account = entry.get("account") if isinstance(entry, dict) else None
                if isinstance(account, dict) and isinstance(account.get("id"), int):
                    names[account["id"]] = str(account.get("name", ""))
            cached = self._members[topic] = (now, names)
        return cached[1].get(account_id)

    def text_for(self, origin: Origin | None, message: Message) -> str:
        if message.private:
            # Typetalk has no private reply in a topic; a private answer never goes there.
            who = origin.member if origin is not None else "the requester"
            return (
                f"🔒 an answer meant for {who} alone cannot be shown in a Typetalk topic: "
                "run the command from the shell or Slack to get it"
            )
        return render(message, self.bot_name)

    async def send(self, topic: str, text: str, reply_to: str | None) -> str | None:
        first: str | None = None
        for part in split_message(text):
            post_id = await self.post(topic, part, reply_to)
            first = first or post_id
        return first

    def send_later(self, topic: str, parts: list[str], reply_to: str | None) -> None:
        async def send_parts() -> None:
            for part in parts:
                try:
                    await self.post(topic, part, reply_to)
                except Exception:
                    log.exception("posting part of an answer to topic %s failed", topic)
                    return

        task = asyncio.create_task(send_parts(), name=f"typetalk-topic-{topic}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    # the ChatAdapter port

    async def reply(self, origin: Origin, message: Message) -> None:
        await self.send(topic_of(origin.channel), self.text_for(origin, message), origin.thread)

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        # Typetalk's reply chain is the thread: progress goes under the member's own post.
        await self.reply(origin, message)
        return origin

    async def announce(self, channel: str, message: Message) -> Origin:
        post_id = await self.send(topic_of(channel), self.text_for(None, message), None)
        return Origin(
            adapter=self.name, channel=channel, member=f"typetalk:{self.bot_name}", thread=post_id
        )

    async def edit(self, posted: Origin, message: Message) -> Origin:
        # Typetalk's API cannot edit a bot's post: the new version goes under the first.
        await self.reply(posted, message)
        return posted


def _secret_given(request: web.Request, secret: SecretStr) -> bool:
    """The shared secret, as `?token=` or as the password of HTTP Basic, in constant time."""
    expected = secret.get_secret_value().encode()
    candidates = [request.query.get("token", "")]
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials:
        with contextlib.suppress(ValueError, binascii.Error):
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            candidates.append(decoded.partition(":")[2])
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), expected)
    return matched


def name_aliases(config: Config) -> set[str]:
    """The Typetalk accounts the config names by name (`typetalk:alice`), not by id."""
    access = config.access
    ids = [*access.members, *(i for ids in access.people.values() for i in ids)]
    return {
        i.removeprefix("typetalk:")
        for i in ids
        if i.startswith("typetalk:") and not i.removeprefix("typetalk:").isdigit()
    }


async def member_of(bot: Kernel, chat: TypetalkChat, topic: str, account_id: int) -> str:
    """`typetalk:<account id>`; or `typetalk:NAME` when the config names the account so and
    the topic's member list on Typetalk's API gives that account that name."""
    member = f"typetalk:{account_id}"
    access = bot.services.access
    aliases = name_aliases(bot.config)
    if access.is_member(member) or not aliases:
        return member
    name = await chat.account_name(topic, account_id)
    return f"typetalk:{name}" if name in aliases else member


def typetalk_handler(bot: Kernel, chat: TypetalkChat, secret: SecretStr | None) -> WebhookHandler:
    # The webhook's side loads with the server (`kajitori serve`), not with the chat port.
    from aiohttp import web

    from adapters.triggers.common import guarded, json_error, parse_json_body, read_body

    @guarded
    async def typetalk_webhook(request: web.Request) -> web.StreamResponse:
        if secret is None or not _secret_given(request, secret):
            log.warning("typetalk webhook refused: no or wrong shared secret")
            return json_error(401, "the shared secret is missing or wrong (?token= or Basic)")
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        delivery = parse_json_body(body, TypetalkDelivery)
        if isinstance(delivery, web.Response):
            return delivery
        post = delivery.post
        if post.account.is_bot:
            # Another bot mentioning this one: answering could start an endless exchange.
            return web.json_response({})
        origin = Origin(
            adapter=chat.name,
            channel=f"typetalk:topic/{delivery.topic.id}",
            member=await member_of(bot, chat, str(delivery.topic.id), post.account.id),
            thread=str(post.id),
            private_replies=False,
        )
        text = strip_mention(post.message, chat.bot_name)
        if text:
            result = await bot.dispatcher.handle(origin, text)
            messages = result.messages
        else:
            messages = [Message(text=f"mention me with a command, e.g. `@{chat.bot_name}+ help`")]
        redactor = bot.services.redactor
        answer = "\n\n".join(redactor.text(chat.text_for(origin, message)) for message in messages)
        parts = split_message(answer)
        if len(parts) > 1 and chat.can_post:
            chat.send_later(topic_of(origin.channel), parts[1:], origin.thread)
        elif len(parts) > 1:
            parts = split_message(answer, max_parts=1)
        return web.json_response({"message": parts[0], "replyTo": post.id})

    return typetalk_webhook


def mount(app: web.Application, bot: Kernel, chat: TypetalkChat, settings: Settings) -> None:
    if settings.typetalk_webhook_secret is None:
        log.warning("TYPETALK_WEBHOOK_SECRET is not set: %s refuses every request", PATH)
    if settings.typetalk_token is None:
        log.warning("TYPETALK_TOKEN is not set: job progress cannot be posted to Typetalk")
    app.router.add_post(PATH, typetalk_handler(bot, chat, settings.typetalk_webhook_secret))
