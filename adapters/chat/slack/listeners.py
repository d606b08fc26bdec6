"""Slack's requests: acknowledged at once, handled in the background.

Every listener acknowledges before doing any work (Slack gives up after 3 seconds), then
hands the request to a background task that drops repeated deliveries through the store,
runs the text through the dispatcher like every other adapter, and answers: public answers
in the channel or thread, refusals and private answers ephemeral, a job's progress in its
own thread (posted by the job itself through the chat port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from adapters.chat.slack.admission import Admission
from adapters.chat.slack.blocks import ACTION_VERBS, RUN_ACTION, SUGGEST_ACTION
from adapters.chat.slack.chat import PostedMessage, SlackChat
from adapters.chat.slack.payloads import (
    action_key,
    action_origin,
    command_text,
    event_key,
    member_user,
    mention_origin,
    slack_id,
    slash_command_key,
    slash_command_member,
    slash_command_origin,
)
from bot.dispatcher import Result
from bot.messages import Tone
from bot.model import ApprovalRequest, Origin, Outcome, RequestKind

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp
    from slack_bolt.context.ack.async_ack import AsyncAck

    from bot.kernel import Kernel

log = logging.getLogger(__name__)

# The acknowledgement of a slash command refused because too much work waits already.
BUSY = (
    "kajitori is busy: {pending} requests are waiting to be handled, so `{command}` was not "
    "run. Try it again in a minute."
)
# A flood of refusals is logged once a minute, not once each.
REFUSALS_LOGGED_EVERY = 60.0
# Answers that concern only the member who typed the command.
PRIVATE_OUTCOMES = {Outcome.REFUSED, Outcome.USAGE, Outcome.FAILED, Outcome.ERROR}


class SlackListeners:
    def __init__(
        self,
        bot: Kernel,
        chat: SlackChat,
        *,
        admission: Admission | None = None,
        remember_deliveries: timedelta = timedelta(hours=1),
    ) -> None:
        self._bot = bot
        self._chat = chat
        self.admission = admission or Admission()
        self._remember = remember_deliveries
        self._tasks: set[asyncio.Task[None]] = set()
        self._refused = 0
        self._refusal_logged_at = float("-inf")

    def register(self, app: AsyncApp, command: str) -> None:
        app.command(command)(self.on_command)
        app.event("app_mention")(self.on_mention)
        for action_id in ACTION_VERBS:
            app.action(action_id)(self.on_button)
        app.action(re.compile(rf"^({SUGGEST_ACTION}|{RUN_ACTION}):\d+$"))(self.on_button)
        # Last: every other event a workspace's subscriptions bring (`message`,
        # `reaction_added`, ...) is acknowledged and left alone. Unanswered, Slack would
        # retry it, and turn the app's event delivery off after enough failures.
        app.event(re.compile(".*"))(self.on_other_event)

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # bolt listeners: acknowledge, then work in the background

    def refusal(self, command: str, text: str, member: str) -> str | None:
        """What `member`'s slash command is answered when the work is past its capacity and
        they already have work waiting or running (see `Admission.has_room`), or None when
        there is room for it.

        Each waiting command holds memory until it runs: past the backlog, the member learns
        at once that this one did not run (mentions and clicks come at a person's pace and
        Slack's Events API limits, and always wait their turn)."""
        if self.admission.has_room(member):
            return None
        self._refused += 1
        if time.monotonic() - self._refusal_logged_at >= REFUSALS_LOGGED_EVERY:
            self._refusal_logged_at = time.monotonic()
            log.warning(
                "busy: %s slash commands refused so far, %s requests wait",
                self._refused,
                self.admission.pending,
            )
        typed = f"{command} {text}".strip()
        return BUSY.format(pending=self.admission.pending, command=typed)

    async def on_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        member = slash_command_member(body)
        refused = self.refusal(str(body.get("command", "")), str(body.get("text", "")), member)
        if refused is not None:
            await ack(response_type="ephemeral", text=refused)
            return
        # in_channel with no text: Slack shows the member's command to the channel.
        await ack(response_type="in_channel")
        self._spawn(self._slash_command(body), "slash command", member)

    async def on_mention(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._mention(body), "mention")

    async def on_other_event(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        log.debug("Slack event %s acknowledged, not handled", body.get("event", {}).get("type"))

    async def on_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._button(body), "button click")

    def _spawn(self, work: Coroutine[Any, Any, None], what: str, member: str | None = None) -> None:
        task = asyncio.create_task(self._guarded(work, what, member))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(
        self, work: Coroutine[Any, Any, None], what: str, member: str | None
    ) -> None:
        try:
            async with self.admission.slot(member):
                await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling a Slack %s failed", what)
        finally:
            # Cancelled (at shutdown) before its turn came, the work never started.
            work.close()

    async def _first_delivery(self, key: str) -> bool:
        services = self._bot.services
        if await services.store.first_seen(key, services.clock.now() + self._remember):
            return True
        log.info("Slack delivery %s seen before: not run again", key)
        return False

    # the work

    async def _slash_command(self, body: dict[str, Any]) -> None:
        if not await self._first_delivery(slash_command_key(body)):
            return
        origin = slash_command_origin(body)
        text = command_text(str(body.get("text", ""))) or "help"
        result = await self._bot.dispatcher.handle(origin, text)
        await self._answer(origin, result)

    async def _mention(self, body: dict[str, Any]) -> None:
        event = body.get("event", {})
        if event.get("bot_id") or event.get("subtype"):
            return  # never answer bots (including this one)
        if not await self._first_delivery(event_key(body)):
            return
        origin = mention_origin(body)
        text = command_text(str(event.get("text", ""))) or "help"
        result = await self._bot.dispatcher.handle(origin, text)
        await self._answer(origin, result)

    async def _button(self, body: dict[str, Any]) -> None:
        if not await self._first_delivery(action_key(body)):
            return
        action = (body.get("actions") or [{}])[0]
        action_id = str(action.get("action_id", ""))
        if action_id.startswith((f"{SUGGEST_ACTION}:", f"{RUN_ACTION}:")):
            await self._command_button(body, action_id, str(action.get("value", "")))
            return
        verb = ACTION_VERBS.get(action_id, "deny")
        origin = action_origin(body)
        message = body.get("message") or {}
        clicked = PostedMessage(
            channel=slack_id(origin.channel),
            ts=str(message.get("ts", "")),
            text=str(message.get("text", "")),
            blocks=list(message.get("blocks") or []),
        )
        # The same way in as a typed `approve N`: member, channel and approver role are
        # checked by the dispatcher, with the clicker as the one deciding.
        result = await self._bot.dispatcher.handle(origin, f"{verb} {action.get('value', '')}")
        await self._answer(origin, result, clicked=clicked if clicked.ts else None)

    async def _command_button(self, body: dict[str, Any], action_id: str, command: str) -> None:
        """A suggested command (on an event's message) pressed: it runs as the member who
        pressed, through the dispatcher, its answers in the thread of the pressed message."""
        origin = action_origin(body)
        message = body.get("message") or {}
        thread = message.get("thread_ts") or message.get("ts")
        origin = origin.in_thread(str(thread) if thread else None)
        run = action_id.startswith(f"{RUN_ACTION}:")
        result = await self._bot.dispatcher.press(origin, command, run=run)
        await self._answer(origin, result)

    async def _answer(
        self, origin: Origin, result: Result, *, clicked: PostedMessage | None = None
    ) -> None:
        messages = list(result.messages)
        # A decision (approve/deny, typed or clicked) carries the request it decided.
        decided = result.request if result.outcome is not Outcome.PENDING else None
        if decided is not None:
            approved = result.command is not None and result.command.spec.name == "approve"
            line = self._decision_line(decided, approved, origin.member, result)
            try:
                await self._chat.close_request(decided.ref, line, where=clicked)
            except Exception:
                log.exception("replacing the buttons of request %s failed", decided.id)
            if result.outcome is not Outcome.REFUSED:
                messages = messages[1:]  # the decision itself now shows on the request message
        if decided is None and result.outcome in PRIVATE_OUTCOMES:
            messages = [m.model_copy(update={"private": True}) for m in messages]
        chat = self._bot.services.chat
        for message in messages:
            if result.outcome is Outcome.STARTED and message.tone is Tone.PROGRESS:
                continue  # "job N started": the job's head message in the channel says so
            await chat.reply(origin, message)

    def _decision_line(
        self, request: ApprovalRequest, approved: bool, member: str, result: Result
    ) -> str:
        if request.kind is RequestKind.APPROVAL:
            verb = "approved" if approved else "denied"
        else:
            verb = "confirmed" if approved else "cancelled"
        user = member_user(member)
        who = f"<@{user}>" if user else member
        at = self._bot.services.clock.now()
        if approved and result.outcome is Outcome.REFUSED:
            # The plan check found the service changed: the request is outdated, not run.
            return f"⚠️ {verb} by {who} at {at:%H:%M} UTC, not run: the service changed"
        job = f" · job {result.job.ref}" if result.job is not None else ""
        mark = "✅" if approved else "❌"
        return f"{mark} {verb} by {who} at {at:%H:%M} UTC{job}"
