"""What Slack sends, in kajitori's terms: origins, command text, and delivery keys.

Member ids are `slack:<user id>` and channels `slack:<channel id>`, as written in the config.
A delivery key names one request from Slack, so that a retry or a redelivery of it is
recognised through the store (across replicas) and never runs a second time.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from typing import Any

from bot.model import Origin

ADAPTER = "slack"
# Origin.extra keys.
RESPONSE_URL = "response_url"
TEAM = "team"
HEAD_TS = "head"  # the ts of a job's head message, whose status line is kept current
HEAD_TEXT = "head_text"
HEAD_TONE = "head_tone"

_LEADING_MENTIONS = re.compile(r"^\s*(?:<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


def slack_id(value: str) -> str:
    """`slack:C0123` -> `C0123` (ids without the prefix pass through)."""
    return value.removeprefix(f"{ADAPTER}:")


def member_user(member: str) -> str | None:
    """The Slack user id of a member, or None for members of other adapters."""
    return member.removeprefix(f"{ADAPTER}:") if member.startswith(f"{ADAPTER}:") else None


def command_text(text: str) -> str:
    """The grammar's text from Slack's markup: mentions of the bot dropped, links unwrapped
    (Slack turns `v2.example.com` into `<http://v2.example.com|v2.example.com>`), entities
    decoded, and typographic quotes straightened."""
    text = _LEADING_MENTIONS.sub("", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return html.unescape(text).translate(_QUOTES).strip()


def _extra(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v}


def slash_command_member(body: Mapping[str, Any]) -> str:
    return f"{ADAPTER}:{body.get('user_id', '')}"


def slash_command_origin(body: dict[str, Any]) -> Origin:
    return Origin(
        adapter=ADAPTER,
        channel=f"{ADAPTER}:{body.get('channel_id', '')}",
        member=slash_command_member(body),
        extra=_extra(response_url=body.get("response_url"), team=body.get("team_id")),
    )


def mention_origin(body: dict[str, Any]) -> Origin:
    event = body.get("event", {})
    return Origin(
        adapter=ADAPTER,
        channel=f"{ADAPTER}:{event.get('channel', '')}",
        member=f"{ADAPTER}:{event.get('user', '')}",
        # Answers go to the thread the mention is in, or start one under it.
        thread=event.get("thread_ts") or event.get("ts"),
        extra=_extra(team=body.get("team_id")),
    )


def action_origin(body: dict[str, Any]) -> Origin:
    """The member who clicked a button, placed where the clicked message is."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id", ""
    )
    message = body.get("message") or {}
    return Origin(
        adapter=ADAPTER,
        channel=f"{ADAPTER}:{channel}",
        member=f"{ADAPTER}:{(body.get('user') or {}).get('id', '')}",
        thread=message.get("thread_ts"),
        extra=_extra(
            response_url=body.get("response_url"), team=(body.get("team") or {}).get("id")
        ),
    )


def _digest(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def slash_command_key(body: dict[str, Any]) -> str:
    """Every invocation has its own trigger_id (and response_url); a redelivery repeats them."""
    trigger = body.get("trigger_id")
    if trigger:
        return f"slack:command:{body.get('team_id', '')}:{trigger}"
    return "slack:command:" + _digest(
        body.get("team_id"),
        body.get("channel_id"),
        body.get("user_id"),
        body.get("text"),
        body.get("response_url"),
    )


def event_key(body: dict[str, Any]) -> str:
    """Slack retries an event with the same event_id (and X-Slack-Retry-Num set)."""
    event_id = body.get("event_id")
    if event_id:
        return f"slack:event:{event_id}"
    event = body.get("event", {})
    return "slack:event:" + _digest(
        body.get("team_id"), event.get("channel"), event.get("user"), event.get("ts")
    )


def action_key(body: dict[str, Any]) -> str:
    """One click: its trigger_id, or the action's own timestamp and the clicker."""
    trigger = body.get("trigger_id")
    if trigger:
        return f"slack:action:{trigger}"
    actions = body.get("actions") or [{}]
    return "slack:action:" + _digest(
        (body.get("user") or {}).get("id"), actions[0].get("action_ts"), actions[0].get("value")
    )
