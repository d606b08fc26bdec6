"""Secrets never reach chat, logs or the audit trail: every outgoing text passes through here."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bot.messages import Message

MASK = "[redacted]"

_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{8,}"),  # Slack tokens
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key ids
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"(?i)(identified\s+by\s+)('[^']*'|\"[^\"]*\")"),
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)([^\s,;&\"']+)"),
    # JSON and Python reprs: "password": "..." / 'SecretString': '...'
    re.compile(
        r"(?i)([\"'](?:password|passwd|secret|secretstring|token|api[_-]?key)[\"']\s*:\s*)"
        r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    ),
    # mysql -pSECRET, as an option only: not the `-production` of `api-production:3`
    re.compile(r"(?i)(?<![\w-])(-p)(\S{4,})"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if len(s) >= 6}

    def add(self, secret: str) -> None:
        if len(secret) >= 6:
            self._secrets.add(secret)

    def discard(self, secret: str) -> None:
        self._secrets.discard(secret)

    def text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_mask_match, text)
        return text

    def message(self, message: Message) -> Message:
        # A private message may carry a secret on purpose (database credentials for their
        # owner); it never goes to a channel, so only known service secrets are removed.
        if message.private:
            return message
        return message.model_copy(
            update={
                "text": self.text(message.text),
                "fields": {k: self.text(v) for k, v in message.fields.items()},
            }
        )


def _mask_match(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) >= 2 and groups[0] is not None:
        # keep the key and separator, mask the value
        return "".join(g for g in groups[:-1] if g is not None) + MASK
    return MASK


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redactor.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
