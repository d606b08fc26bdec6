"""What happens to each AWS event that arrives: read, deduplicated, routed, formatted,
posted (or folded into an alarm's message, or into a digest), and only then let go.

Several replicas may read one queue: the first to claim an event's id in the store posts
it, the others drop their copy. A message is deleted only once its event is posted; when
posting fails, the claim is marked for retry and the message comes back after its
visibility timeout.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from pydantic import BaseModel

from bot.config import EventsConfig
from bot.grammar import format_duration
from bot.messages import Button, Message, Tone
from bot.model import Origin
from bot.ports.store import EventClaim
from bot.services import Services
from commands.events.notices import (
    Kind,
    NotAnEvent,
    Notice,
    Routes,
    is_ignored,
    read_event,
    unwrap,
    worth_posting,
)

log = logging.getLogger(__name__)

REMEMBER_EVENTS = timedelta(days=1)


class Handled(StrEnum):
    POSTED = "posted"
    EDITED = "edited"  # folded into an alarm's message
    DIGESTED = "digested"  # over the channel's rate limit: in the next digest line
    DUPLICATE = "duplicate"  # another replica (or an earlier copy) posted it
    HELD = "held"  # another replica is posting it: keep the message, it comes back
    DROPPED = "dropped"  # ignored by the config, not worth a post, or unreadable
    FAILED = "failed"  # could not be posted: keep the message, it comes back

    @property
    def done(self) -> bool:
        return self not in (Handled.FAILED, Handled.HELD)


class AlarmRecord(BaseModel, defer_build=True):
    """An alarm's message and what it has shown, kept in the store between events."""

    name: str
    state: str
    changed_at: datetime
    since: datetime  # when it went into ALARM
    posted: Origin | None = None
    flaps: int = 0  # times it went back into ALARM within the flap window
    text: str = ""
    fields: dict[str, str] = {}
    suggestions: list[str] = []


@dataclass
class _Window:
    started: float
    posts: int = 0
    overflow: list[str] = field(default_factory=list)


class EventIntake:
    def __init__(self, services: Services, config: EventsConfig) -> None:
        self.services = services
        self.config = config
        self.routes = Routes(services.config)
        self._windows: dict[str, _Window] = {}
        self._digests: list[tuple[str, list[str]]] = []

    # routing

    def channel_for(self, notice: Notice) -> str | None:
        if notice.env is not None:
            env = self.services.config.environments.get(notice.env)
            if env is not None and env.channel:
                return env.channel
        return self.config.default_channel

    def suggestions_for(self, notice: Notice) -> list[str]:
        for remedy in self.config.remediate:
            if (
                remedy.alarm is not None
                and notice.alarm
                and fnmatchcase(notice.alarm, remedy.alarm)
            ):
                return list(remedy.suggest)
            if remedy.event is not None and fnmatchcase(notice.detail_type, remedy.event):
                return list(remedy.suggest)
        return []

    # the EventSink port

    async def take(self, body: str, *, receive_count: int = 1) -> bool:
        return (await self.handle(body, receive_count=receive_count)).done

    async def flush(self) -> None:
        await self.flush_digests()

    # the one entry

    async def handle(self, body: str, *, receive_count: int = 1) -> Handled:
        try:
            event = unwrap(body)
            notice = read_event(event, self.routes)
        except NotAnEvent as error:
            log.warning("dropping a message that is not an AWS event: %s", error)
            return Handled.DROPPED
        if is_ignored(notice, self.config.ignore) or not worth_posting(notice):
            return Handled.DROPPED
        # A lease, not a permanent claim: a replica that stops between claiming and posting
        # leaves a claim that runs out, and the message's next copy (SQS offers it again
        # after its visibility timeout) is posted by whoever receives it.
        store, now = self.services.store, self.services.clock.now()
        token = secrets.token_hex(8)
        lease_until = now + self.config.visibility_timeout
        claim = await store.claim_event(notice.event_id, token, lease_until, now)
        if claim is EventClaim.POSTED:
            return Handled.DUPLICATE
        if claim is EventClaim.HELD:
            return Handled.HELD
        try:
            handled = await self._post(notice)
        except Exception:
            log.exception("posting event %s failed", notice.event_id)
            handled = Handled.FAILED
        if handled is Handled.FAILED:
            await store.release_event(notice.event_id, token, self.services.clock.now())
            return handled
        try:
            await store.event_posted(notice.event_id, self.services.clock.now() + REMEMBER_EVENTS)
        except Exception:
            # Posted all the same: the message is done with. A later copy may be posted
            # again once the claim runs out.
            log.exception("recording event %s as posted failed", notice.event_id)
        return handled

    async def _post(self, notice: Notice) -> Handled:
        channel = self.channel_for(notice)
        if channel is None:
            log.warning(
                "event %s (%s) has no channel: set events.default_channel",
                notice.event_id,
                notice.title,
            )
            return Handled.DROPPED
        if notice.kind is Kind.ALARM and notice.alarm:
            return await self._alarm(notice, channel)
        if notice.change:
            await self._note_who_changed(notice)
        if notice.kind is Kind.OTHER:
            message = Message(text=compact_line(notice))
        else:
            message = self.message_for(notice, self.suggestions_for(notice))
        return await self._announce(channel, message, notice.title)

    async def _announce(self, channel: str, message: Message, title: str) -> Handled:
        if not self._admit(channel, title):
            return Handled.DIGESTED
        posted = await self.services.chat.announce(channel, message)
        return Handled.FAILED if posted is None else Handled.POSTED

    # formatting

    def message_for(self, notice: Notice, suggestions: list[str]) -> Message:
        where = f" · {notice.where}" if notice.where else ""
        text = f"{notice.title}{where}"
        fields = dict(notice.fields)
        if notice.reason:
            fields.setdefault("reason", notice.reason)
        if notice.at is not None:
            fields["since"] = f"{notice.at:%Y-%m-%d %H:%M:%S} UTC"
        if notice.console:
            fields["console"] = notice.console
        buttons = [
            Button(action="suggest", label=command[:75], command=command) for command in suggestions
        ]
        return Message(text=text, tone=notice.tone, fields=fields, buttons=buttons)

    async def _note_who_changed(self, notice: Notice) -> None:
        """A change to a service: kajitori's own (a job holds the service's lock) or not."""
        if notice.service is None or notice.env is None:
            notice.fields["by"] = "not started by kajitori"
            return
        lock = await self.services.store.get_lock(f"{notice.service}/{notice.env}")
        if lock is not None and lock.job_id is not None:
            notice.fields["by"] = f"kajitori job {lock.job_id} ({lock.owner})"
        else:
            notice.fields["by"] = "⚠️ not started by kajitori (a change made outside it)"

    # alarms: one message per alarm, edited as it changes

    async def _alarm(self, notice: Notice, channel: str) -> Handled:
        assert notice.alarm is not None
        store = self.services.store
        key = f"alarm:{notice.alarm}"
        at = notice.at or self.services.clock.now()
        for _attempt in range(5):
            raw = await store.get_value(key)
            record = AlarmRecord.model_validate_json(raw) if raw else None
            if record is not None and at < record.changed_at:
                return Handled.DROPPED  # an older state change arriving late
            if notice.state == "ALARM":
                if record is not None and record.state == "ALARM":
                    return Handled.DROPPED  # the same state again
                flapping = (
                    record is not None
                    and record.posted is not None
                    and at - record.changed_at <= self.config.flap_window
                )
                if flapping:
                    assert record is not None
                    updated = record.model_copy(
                        update={"state": "ALARM", "changed_at": at, "flaps": record.flaps + 1}
                    )
                    if not await store.swap_value(key, raw, updated.model_dump_json()):
                        continue
                    await self._show(updated, notice)
                    return Handled.EDITED
                fresh = AlarmRecord(
                    name=notice.alarm,
                    state="ALARM",
                    changed_at=at,
                    since=at,
                    suggestions=self.suggestions_for(notice),
                )
                message = self.message_for(notice, fresh.suggestions)
                fresh.text, fresh.fields = message.text, message.fields
                if not await store.swap_value(key, raw, fresh.model_dump_json()):
                    continue
                if not self._admit(channel, notice.title):
                    return Handled.DIGESTED
                posted = await self.services.chat.announce(channel, message)
                if posted is None:
                    await store.swap_value(key, fresh.model_dump_json(), raw or "")
                    return Handled.FAILED
                done = fresh.model_copy(update={"posted": posted})
                await store.swap_value(key, fresh.model_dump_json(), done.model_dump_json())
                return Handled.POSTED
            # OK or INSUFFICIENT_DATA
            if record is None or record.state == notice.state:
                return Handled.DROPPED  # nothing of it was posted: nothing to update
            updated = record.model_copy(update={"state": notice.state, "changed_at": at})
            if not await store.swap_value(key, raw, updated.model_dump_json()):
                continue
            if record.posted is None:
                # It was in a digest line, not a message: only its state is kept.
                return Handled.DROPPED
            await self._show(updated, notice)
            if notice.state == "OK" and record.flaps < 2:
                took = format_duration(at - record.since) if at > record.since else "a moment"
                await self.services.chat.reply(
                    record.posted,
                    Message(
                        text=f"{record.name} recovered at {at:%H:%M:%S} UTC after {took}",
                        tone=Tone.SUCCESS,
                        fields={"reason": notice.reason} if notice.reason else {},
                    ),
                )
            return Handled.EDITED
        log.warning(
            "alarm %s changed too often at once; event %s skipped", notice.alarm, notice.event_id
        )
        return Handled.DROPPED

    async def _show(self, record: AlarmRecord, notice: Notice) -> None:
        """Edit the alarm's message to what it is now."""
        assert record.posted is not None
        fields = dict(record.fields)
        lines = [record.text]
        if record.state == "OK":
            tone = Tone.SUCCESS
            lines[0] = lines[0].replace("ALARM ", "OK ", 1)
            lines.append(f"recovered at {record.changed_at:%H:%M:%S} UTC")
            buttons: list[Button] = []
        else:
            tone = Tone.FAILURE if record.state == "ALARM" else Tone.WARNING
            buttons = [
                Button(action="suggest", label=c[:75], command=c) for c in record.suggestions
            ]
            if record.state != "ALARM":
                lines[0] = lines[0].replace("ALARM ", f"{record.state} ", 1)
        if record.flaps:
            lines.append(
                f"flapping: back in ALARM {record.flaps} time{'s' if record.flaps > 1 else ''} "
                f"since {record.since:%H:%M} UTC (last {record.changed_at:%H:%M:%S})"
            )
        if notice.reason:
            fields["reason"] = notice.reason
        await self.services.chat.edit(
            record.posted,
            Message(text="\n".join(lines), tone=tone, fields=fields, buttons=buttons),
        )

    # noise control: per channel, at most `posts` new messages per `per`

    def _admit(self, channel: str, title: str) -> bool:
        limit = self.config.rate_limit
        now = time.monotonic()
        window = self._windows.get(channel)
        if window is None or now - window.started >= limit.per.total_seconds():
            if window is not None and window.overflow:
                # The digest of the window that ended is due first; it comes with the next flush.
                self._digests.append((channel, window.overflow))
            window = self._windows[channel] = _Window(started=now)
        if window.posts < limit.posts:
            window.posts += 1
            return True
        window.overflow.append(title)
        return False

    async def flush_digests(self) -> None:
        """Post one digest line per channel for the events over its rate limit, once their
        window has ended (called by the intake loop after each receive)."""
        now = time.monotonic()
        per = self.config.rate_limit.per.total_seconds()
        for channel, window in list(self._windows.items()):
            if window.overflow and now - window.started >= per:
                self._digests.append((channel, window.overflow))
                del self._windows[channel]
        while self._digests:
            channel, titles = self._digests.pop(0)
            shown = "; ".join(titles[:10]) + (
                f"; … and {len(titles) - 10} more" if len(titles) > 10 else ""
            )
            period = format_duration(self.config.rate_limit.per)
            await self.services.chat.announce(
                channel,
                Message(
                    text=f"{len(titles)} more event{'s' if len(titles) > 1 else ''} in {period} "
                    f"(over this channel's limit): {shown}",
                    tone=Tone.WARNING,
                ),
            )


def compact_line(notice: Notice) -> str:
    """An event kajitori has no format for, in one line."""
    where = f" · {notice.where}" if notice.where else ""
    at = f" at {notice.at:%Y-%m-%d %H:%M} UTC" if notice.at else ""
    return f"{notice.detail_type} from {notice.source}{where}{at} (event {notice.event_id})"
