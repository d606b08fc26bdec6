"""The chat grammar: tokens with their positions, flags, durations and counts.

The tokenizer keeps each token's span so that a free-text argument (a lock reason, an SQL
statement) can be taken verbatim from the original text, quotes and all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from bot.errors import UsageError

# Slack and phones turn straight quotes into typographic ones; accept both.
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u201d": "\u201d"}

FLAGS = frozenset({"--dry-run", "--yes"})


@dataclass(frozen=True)
class Token:
    value: str
    start: int
    end: int
    quoted: bool = False


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] in _QUOTES:
            close = _QUOTES[text[i]]
            j = text.find(close, i + 1)
            if j < 0:
                raise UsageError(f"unclosed quote {text[i]} at position {i + 1}")
            tokens.append(Token(text[i + 1 : j], start, j + 1, quoted=True))
            i = j + 1
            continue
        while i < n and not text[i].isspace():
            i += 1
        tokens.append(Token(text[start:i], start, i))
    return tokens


_DURATION_PART = re.compile(r"(\d+)(d|h|m|s)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1h30m`, `90s`, `1d`."""
    value = text.strip().lower()
    pos, seconds = 0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value or seconds <= 0:
        raise UsageError(f"bad duration {text!r}: use a number with a unit, like 30m, 2h or 1h30m")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts[:2])


@dataclass(frozen=True)
class CountChange:
    """`5` (absolute), `+2` or `-1` (relative)."""

    value: int
    relative: bool

    def target(self, current: int) -> int:
        return current + self.value if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:+d}" if self.relative else str(self.value)


_COUNT = re.compile(r"([+-]?)(\d{1,5})")


def parse_count(text: str) -> CountChange:
    match = _COUNT.fullmatch(text)
    if match is None:
        raise UsageError(f"bad count {text!r}: use a number (5) or a change (+2, -1)")
    sign, digits = match.groups()
    value = int(digits)
    if sign == "-":
        value = -value
    return CountChange(value=value, relative=bool(sign))
