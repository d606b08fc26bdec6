"""The chat port on Slack's Web API.

A job's progress lives in one thread under its head message, whose status line follows
the job; private answers are ephemeral (through the command's response_url when there is
one), falling back to a direct message; a request's buttons are replaced by who decided.
Every post and edit goes through the pacing of `pacing.py`, within Slack's rate limits. An
answer for a channel the bot is not a member of (a private channel, a DM between others)
goes through the command's response_url, else to the member as a direct message. An answer
too big for one Slack message becomes several, a long table a file.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.chat.slack.blocks import (
    FALLBACK_LIMIT,
    TONE_MARKS,
    Block,
    context,
    escape,
    fallback_text,
    fits,
    message_blocks,
    message_parts,
    split_blocks,
    table_as_file,
    with_status,
    without_request_actions,
)
from adapters.chat.slack.pacing import (
    ChannelPacer,
    Ending,
    Fold,
    Priority,
    Send,
    UpdateBudget,
)
from adapters.chat.slack.payloads import (
    ADAPTER,
    HEAD_TEXT,
    HEAD_TONE,
    HEAD_TS,
    RESPONSE_URL,
    member_user,
    slack_id,
)
from adapters.chat.slack.status_line import StatusLines
from bot.messages import Message, Tone
from bot.model import Origin

log = logging.getLogger(__name__)

RUNNING_LINE = "⏳ running"
STATUS_LINE_LIMIT = 150
PREVIEW_LIMIT = 2800
# Request messages remembered so that a typed `approve N` also replaces N's buttons.
REMEMBERED_REQUESTS = 500
# response_url is good for 30 minutes; a head's thread outlives it and must not carry it.
_TRANSIENT_EXTRA = {RESPONSE_URL}
# chat.postMessage's errors for a channel the bot cannot post in.
NOT_IN_CHANNEL = frozenset({"not_in_channel", "channel_not_found"})


def _not_in_channel(error: SlackApiError) -> bool:
    return error.response.get("error") in NOT_IN_CHANNEL


@dataclass(frozen=True)
class PostedMessage:
    """A message the bot posted: enough to edit it later."""

    channel: str  # Slack channel id
    ts: str
    text: str
    blocks: list[Block]


def _plain_progress(message: Message) -> bool:
    """Progress made of text alone, which can share one post with the next lines."""
    return message.tone is Tone.PROGRESS and not (
        message.fields or message.table or message.buttons or message.attachment
    )


def _carries_progress(message: Message) -> bool:
    """A post in a thread that may carry the thread's waiting progress lines: one whose
    blocks are never edited later (no request buttons) and that brings no file."""
    return message.tone is not Tone.PROGRESS and not message.buttons and not message.attachment


DIVIDER: Block = {"type": "divider"}


def _together_header(count: int) -> Block:
    return context(f"{count} jobs ended together; each one's thread gets its final message too")


def status_line(message: Message) -> str:
    first = (message.text.splitlines() or [""])[0]
    line = TONE_MARKS[message.tone] + escape(first)
    return line if len(line) <= STATUS_LINE_LIMIT else line[: STATUS_LINE_LIMIT - 1] + "…"


class SlackChat:
    name = ADAPTER

    def __init__(
        self,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        *,
        status_interval: float = 1.0,
        response_timeout: float = 10.0,
        pacer: ChannelPacer | None = None,
        updates: UpdateBudget | None = None,
    ) -> None:
        self._client = client
        self._session = session
        self._response_timeout = response_timeout
        self._status = StatusLines(self._update_status, status_interval)
        self._requests: OrderedDict[str, PostedMessage] = OrderedDict()
        self.pacer = pacer or ChannelPacer()
        self.updates = updates or UpdateBudget()

    async def close(self) -> None:
        await self._status.close()
        await self.pacer.close()

    # the ChatAdapter port

    async def reply(self, origin: Origin, message: Message) -> None:
        if message.private:
            await self._private(origin, message)
            return
        if _plain_progress(message) and origin.thread is not None:
            await self._progress(origin.channel, origin.thread, message)
        elif not await self._answer_command(origin, message):
            ending = message.tone in (Tone.SUCCESS, Tone.FAILURE) and HEAD_TS in origin.extra
            try:
                await self.post(
                    origin.channel,
                    message,
                    thread=origin.thread,
                    ending_of=origin.extra.get(HEAD_TEXT, "") if ending else None,
                )
            except SlackApiError as error:
                if not _not_in_channel(error):
                    raise
                await self._elsewhere(origin, message)
                return
        head = origin.extra.get(HEAD_TS)
        if head is None:
            return
        channel = slack_id(origin.channel)
        head_message = Message(
            text=origin.extra.get(HEAD_TEXT, ""), tone=Tone(origin.extra.get(HEAD_TONE, "info"))
        )
        if message.tone is Tone.PROGRESS:
            self._status.progress(channel, head, head_message, status_line(message))
        elif message.tone in (Tone.SUCCESS, Tone.FAILURE):
            await self._status.final(channel, head, head_message, status_line(message))

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        channel, thread = origin.channel, origin.thread
        try:
            posted = await self.post(channel, message, thread=thread, status=RUNNING_LINE)
        except SlackApiError as error:
            if not _not_in_channel(error):
                raise
            # A job's thread needs a message of the bot's own: in a direct message, then.
            dm = await self._direct_message(origin, message, status=RUNNING_LINE)
            if dm is None:
                return origin
            posted, channel, thread = dm, f"{ADAPTER}:{dm.channel}", None
        extra = {k: v for k, v in origin.extra.items() if k not in _TRANSIENT_EXTRA}
        extra |= {HEAD_TS: posted.ts, HEAD_TEXT: message.text, HEAD_TONE: message.tone.value}
        return origin.model_copy(
            update={"channel": channel, "thread": thread or posted.ts, "extra": extra}
        )

    async def announce(self, channel: str, message: Message) -> Origin:
        posted = await self.post(channel, message)
        extra: dict[str, str] = {}
        if not (message.fields or message.table or message.buttons):
            # A plain announcement can head a job's thread and carry its status line.
            extra = {HEAD_TS: posted.ts, HEAD_TEXT: message.text, HEAD_TONE: message.tone.value}
        return Origin(
            adapter=ADAPTER, channel=channel, member="kajitori", thread=posted.ts, extra=extra
        )

    async def edit(self, posted: Origin, message: Message) -> Origin:
        """Replace the message `posted` heads (as `announce` returned it) with `message`."""
        if posted.thread is None:
            return await self.announce(posted.channel, message)
        await self._client.chat_update(
            channel=slack_id(posted.channel),
            ts=posted.thread,
            text=fallback_text(message),
            blocks=message_blocks(message),
        )
        return posted

    # Slack specifics

    async def post(
        self,
        channel: str,
        message: Message,
        *,
        thread: str | None = None,
        status: str | None = None,
        ending_of: str | None = None,
    ) -> PostedMessage:
        """Post `message`, in several messages when Slack would refuse it as one (the first is
        returned: the one a status line or an edit goes to). `ending_of`: the message ends
        the job whose head says that, and may be told with other jobs' endings (`pacing`)."""
        message = table_as_file(message)
        parts = message_parts(message)
        if status is not None:
            parts[0] = with_status(parts[0], status)
        # Progress waits; what a person waits for (answers, requests, endings) goes first.
        priority = Priority.ROUTINE if message.tone is Tone.PROGRESS else Priority.PERSON
        posted: list[PostedMessage] = []
        for n, blocks in enumerate(parts):
            text = fallback_text(message) if n == 0 else f"(continued, {n + 1}/{len(parts)})"
            send = self._sender(channel, text, blocks, thread)
            fold = ending = None
            if thread is not None and len(parts) == 1 and _carries_progress(message):
                fold = self._fold(channel, thread, text, blocks)
                if ending_of is not None:
                    ending = Ending((ending_of, text, blocks), self._endings(channel))
            response = await self.pacer.post(
                slack_id(channel), send, priority=priority, thread=thread, fold=fold, ending=ending
            )
            posted.append(
                PostedMessage(
                    channel=str(response.get("channel") or slack_id(channel)),
                    ts=str(response["ts"]),
                    text=text,
                    blocks=blocks,
                )
            )
        first = posted[0]
        requests = [b for b in message.buttons if not b.runs_command]
        if requests:
            # The buttons are on the last part: that is the message a decision edits.
            self._remember_request(requests[0].request_id, posted[-1])
        if message.attachment is not None:
            await self._upload(first, message, thread or first.ts)
        return first

    def _sender(
        self, channel: str, text: str, blocks: list[Block], thread: str | None = None
    ) -> Send:
        """A `chat.postMessage`, to send when the channel's pace lets it."""
        return lambda: self._client.chat_postMessage(
            channel=slack_id(channel),
            text=text,
            blocks=blocks,
            thread_ts=thread,
            unfurl_links=False,
            unfurl_media=False,
        )

    def _fold(self, channel: str, thread: str, text: str, blocks: list[Block]) -> Fold:
        """A post in `thread` that also carries the progress lines still waiting there, before
        its own blocks, as they would have read in the thread; its text (the notification)
        starts with its own."""

        def fold(lines: list[str]) -> Send | None:
            earlier = message_blocks(Message(text="\n".join(lines), tone=Tone.PROGRESS))
            together = [*earlier, *blocks]
            if not fits(together):
                return None
            plain = "\n".join(TONE_MARKS[Tone.PROGRESS] + escape(line) for line in lines)
            both = f"{text}\n{plain}"
            if len(both) > FALLBACK_LIMIT:
                both = both[: FALLBACK_LIMIT - 1] + "…"
            return self._sender(channel, both, together, thread)

        return fold

    def _endings(self, channel: str) -> Callable[[list[Any]], tuple[Send, int]]:
        """One post in `channel` telling several jobs' final messages (as many as fit, in
        order), each under the head of the job it ends."""

        def combine(pieces: list[Any]) -> tuple[Send, int]:
            body: list[Block] = []
            texts: list[str] = []
            for head, text, blocks in pieces:
                entry = [*blocks, context(f"↳ {escape(head.splitlines()[0] if head else '')}")]
                joined = [*body, DIVIDER, *entry] if body else entry
                if body and not fits([_together_header(len(pieces)), *joined]):
                    break
                body = joined
                texts.append(text.splitlines()[0] if text else "")
            together = [_together_header(len(texts)), *body]
            text = "\n".join(texts)
            if len(text) > FALLBACK_LIMIT:
                text = text[: FALLBACK_LIMIT - 1] + "…"
            return self._sender(channel, text, together), len(texts)

        return combine

    async def close_request(
        self, request_id: str, line: str, where: PostedMessage | None = None
    ) -> None:
        """Replace a request's buttons with who decided what (`where`: the clicked message)."""
        remembered = self._requests.pop(request_id, None)
        where = where or remembered
        if where is None:
            return
        blocks = [*without_request_actions(where.blocks), context(line)]
        await self.updates.update(
            lambda: self._client.chat_update(
                channel=where.channel, ts=where.ts, text=f"{where.text}\n{line}", blocks=blocks
            )
        )

    async def respond(self, response_url: str, payload: dict[str, Any]) -> bool:
        """Post to a command's or a click's response_url; False when Slack did not take it."""
        webhook = AsyncWebhookClient(
            response_url, timeout=int(self._response_timeout), session=self._session
        )
        try:
            response = await webhook.send_dict(payload)
        except Exception as error:
            log.warning("posting to a response_url failed: %s", type(error).__name__)
            return False
        if response.status_code != 200:
            log.warning("a response_url answered %s", response.status_code)
            return False
        return True

    async def _answer_command(self, origin: Origin, message: Message) -> bool:
        """Answer a slash command in the channel through its response_url, as Slack intends:
        it is not counted against the channel's one post a second, so a busy channel's
        answers never wait behind its jobs' progress. False when it must be a post instead
        (no response_url, a request whose buttons are edited later, a file)."""
        url = origin.extra.get(RESPONSE_URL)
        if url is None or origin.thread is not None:
            return False  # an answer in a thread (a press on a threaded message) is a post
        if message.buttons or message.attachment is not None:
            return False
        message = table_as_file(message)
        if message.attachment is not None:
            return False  # a long table goes as a file, which only a post can carry
        for n, blocks in enumerate(message_parts(message)):
            text = fallback_text(message) if n == 0 else f"(continued, {n + 1})"
            payload = {
                "response_type": "in_channel",
                "replace_original": False,
                "text": text,
                "blocks": blocks,
            }
            if not await self.respond(url, payload):
                if n == 0:
                    return False  # nothing went: a post instead
                log.warning("part %s of an answer could not go through its response_url", n + 1)
                break
        return True

    def _remember_request(self, request_id: str, posted: PostedMessage) -> None:
        self._requests[request_id] = posted
        self._requests.move_to_end(request_id)
        while len(self._requests) > REMEMBERED_REQUESTS:
            self._requests.popitem(last=False)

    async def _private(self, origin: Origin, message: Message) -> None:
        user = member_user(origin.member)
        if user is None:
            log.warning("a private message for %s cannot go through Slack", origin.member)
            return
        text = fallback_text(message)
        blocks = [block for part in message_parts(message) for block in part]
        if message.attachment is not None:
            # Ephemeral messages carry no files: the content goes inline.
            content = escape(message.attachment.content)
            if len(content) > PREVIEW_LIMIT:
                content = content[:PREVIEW_LIMIT] + "\n…"
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": f"```{content}```"}}
            )
        # Too big for one message: several, in order, each the way the first one went.
        for part in split_blocks(blocks):
            await self._private_part(origin, user, text, part)

    async def _private_part(
        self, origin: Origin, user: str, text: str, blocks: list[Block]
    ) -> None:
        url = origin.extra.get(RESPONSE_URL)
        if url and await self.respond(
            url,
            {
                "response_type": "ephemeral",
                "replace_original": False,
                "text": text,
                "blocks": blocks,
            },
        ):
            return
        try:
            await self._client.chat_postEphemeral(
                channel=slack_id(origin.channel),
                user=user,
                text=text,
                blocks=blocks,
                thread_ts=origin.thread,
            )
        except SlackApiError as error:
            # Not in that channel (or no channel at all): a direct message still reaches them.
            log.info(
                "ephemeral message failed (%s); sending a direct message",
                error.response.get("error"),
            )
            await self._client.chat_postMessage(channel=user, text=text, blocks=blocks)

    async def _update_status(
        self, channel: str, ts: str, head: Message, line: Callable[[], str]
    ) -> None:
        # The line is read when the workspace's budget lets the edit go: the newest wins.
        await self.updates.update(
            lambda: self._client.chat_update(
                channel=channel,
                ts=ts,
                text=fallback_text(head),
                blocks=with_status(message_parts(table_as_file(head))[0], line()),
            )
        )

    async def _elsewhere(self, origin: Origin, message: Message) -> None:
        """An answer for a channel the bot is not in: through the command's response_url
        (for everyone there, as if posted), else as a direct message to the member."""
        url = origin.extra.get(RESPONSE_URL)
        if url:
            parts = message_parts(table_as_file(message))
            sent = 0
            for blocks in parts:
                payload = {
                    "response_type": "in_channel",
                    "replace_original": False,
                    "text": fallback_text(message),
                    "blocks": blocks,
                }
                if not await self.respond(url, payload):
                    break
                sent += 1
            if sent == len(parts):
                return
        await self._direct_message(origin, message)

    async def _direct_message(
        self, origin: Origin, message: Message, *, status: str | None = None
    ) -> PostedMessage | None:
        user = member_user(origin.member)
        if user is None:
            log.warning("an answer for %s reaches nobody: not in %s", origin.member, origin.channel)
            return None
        opened = await self._client.conversations_open(users=user)
        dm = str((opened.get("channel") or {}).get("id") or user)
        where = slack_id(origin.channel)
        note = (
            f"(sent here: I am not a member of channel {where}; `/invite` me there to answer "
            "in the channel)"
        )
        return await self.post(
            dm, message.model_copy(update={"text": f"{note}\n{message.text}"}), status=status
        )

    async def _progress(self, channel: str, thread: str, message: Message) -> None:
        """A progress line, sent with the other lines of its thread still waiting."""

        def merged(lines: list[str]) -> Send:
            joined = Message(text="\n".join(lines), tone=Tone.PROGRESS)
            return self._sender(channel, fallback_text(joined), message_blocks(joined), thread)

        self.pacer.progress(slack_id(channel), thread, message.text, merged)

    async def _upload(self, posted: PostedMessage, message: Message, thread: str) -> None:
        attachment = message.attachment
        assert attachment is not None
        try:
            await self._client.files_upload_v2(
                channel=posted.channel,
                thread_ts=thread,
                content=attachment.content,
                filename=attachment.filename,
                title=attachment.filename,
            )
        except Exception:
            log.exception("uploading %s to %s failed", attachment.filename, posted.channel)
            await self._client.chat_postMessage(
                channel=posted.channel,
                thread_ts=thread,
                text=f"⚠️ could not attach {escape(attachment.filename)}",
            )
