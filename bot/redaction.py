"""Secrets never reach chat, logs or the audit trail: every outgoing text passes through here.

Logs are redacted as each record is made (`install_log_redaction`), whatever logger writes it
(botocore's DEBUG lines carry request headers, credentials among them) and whatever handler
writes it out, handlers added later included: the message, the exception's text and
traceback, and the stack.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import weakref
from collections.abc import Iterable
from typing import Any

from bot.messages import Message

MASK = "[redacted]"

_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{8,}"),  # Slack tokens
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key ids
    # AWS session tokens, however they are labelled (STS tokens start so, base64 of a header)
    re.compile(r"(?:IQoJb3JpZ2lu|FwoGZXIvYXdz|FQoGZXIvYXdz)[A-Za-z0-9/+=%]{16,}"),
    # AWS request headers and query strings as botocore logs them at DEBUG:
    # 'X-Amz-Security-Token': b'...', x-amz-security-token:..., X-Amz-Security-Token=...
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,&<>]+)"),
    re.compile(r"(?i)(x-amz-signature['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,&<>]+)"),
    # Authorization: AWS4-HMAC-SHA256 Credential=KEY/..., SignedHeaders=..., Signature=...
    re.compile(r"(?i)(\bCredential=)([^\s,'\"&]+)"),
    re.compile(r"(?i)(\bSignature[=:]\s*)([0-9a-f]{16,})"),
    re.compile(
        r"(?i)(authorization['\"]?\s*[:=]\s*b?['\"]?)"
        r"((?:AWS4-HMAC-SHA256|AWS|Bearer|Basic|Token|Digest)\s[^'\"\n]+)"
    ),
    # Credentials in XML answers (STS) and in JSON or Python reprs
    re.compile(r"(?i)(<(?:SecretAccessKey|SessionToken|Password)>)([^<]*)"),
    re.compile(
        r"(?i)([\"']?(?:aws_)?(?:secret_?access_?key|session_?token|security_?token)[\"']?"
        r"\s*[:=]\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;&\"']+)"
    ),
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


class LogRedaction:
    """Every log record of the process, redacted as it is made, by the redactors of every bot
    built in it (each knows its own secrets, some only for a while: temporary passwords)."""

    def __init__(self) -> None:
        self._redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()
        self._patterns_only = Redactor()
        self._lock = threading.Lock()
        self._installed = False

    def add(self, redactor: Redactor) -> None:
        self._redactors.add(redactor)

    def text(self, text: str) -> str:
        redactors = list(self._redactors) or [self._patterns_only]
        for redactor in redactors:
            text = redactor.text(text)
        return text

    def record(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = None  # a bad format string: logging reports it when the line is written
        if message is not None:
            cleaned = self.text(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Rendered here, once, redacted; without exc_info no formatter renders it again.
            rendered = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self.text(rendered)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.text(record.stack_info)

    def install(self) -> None:
        with self._lock:
            if self._installed:
                return
            make_record = logging.getLogRecordFactory()

            def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = make_record(*args, **kwargs)
                self.record(record)
                return record

            logging.setLogRecordFactory(redacted_record)
            self._installed = True


_LOGS = LogRedaction()


def install_log_redaction(redactor: Redactor) -> None:
    """From now on, every log record is redacted with `redactor` (and those added before)."""
    _LOGS.add(redactor)
    _LOGS.install()


def redact_log_text(text: str) -> str:
    """For what a formatter adds to a record after it was made (`extra=` fields)."""
    return _LOGS.text(text)
