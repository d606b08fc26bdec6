"""The errors a user can act on, and the one place that turns an error into a reply.

Everything else is an internal error, answered with a reference to the logs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from bot.model import Outcome

# Says what went wrong when an unexpected error is one a person can understand (AWS still
# throttling after every retry); None leaves it an internal error.
Explain = Callable[[BaseException], str | None]


class KajitoriError(Exception):
    """Base for every error whose message is meant for the person who typed the command."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n{self.hint}"


class UsageError(KajitoriError):
    """The text could not be understood; the reply shows the usage line."""

    def __init__(self, message: str, *, usage: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.usage = usage


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word` (case aside), if one is close enough to be a typo."""
    by_folded = {c.casefold(): c for c in candidates}
    close = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[close[0]] if close else None


def unknown_name(
    kind: str, name: str, known: Iterable[str], *, where: str = "", also: Iterable[str] = ()
) -> UsageError:
    """The one way to say a name is not known: a suggestion if one is close, every known value.

    `known` may carry notes (`production (aliases: prod)`): a suggestion is made from the
    names before the first space, and from `also` (aliases)."""
    listed = list(known)
    names = [k.split(" ", 1)[0] for k in listed]
    close = did_you_mean(name, [*names, *also])
    place = f" in {where}" if where else ""
    message = f"unknown {kind} {name!r}{place}"
    if close is not None:
        message += f": did you mean `{close}`?"
    return UsageError(message, hint=f"known{place}: {', '.join(listed) or 'none'}")


class Refused(KajitoriError):
    """The command was understood but a guardrail or a precondition says no."""


class OperationFailed(KajitoriError):
    """The operation started and did not succeed."""


class ConfigError(Exception):
    """The configuration file is invalid; `errors` holds one line per problem, with its key path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def failure_reply(error: BaseException, explain: Explain) -> tuple[Outcome, str]:
    """The outcome and the words for a command or job that ended with `error`.

    `Outcome.ERROR` (with no words) is an internal error: the caller logs it with the
    traceback and answers with a reference to the logs, never with the error's text."""
    if isinstance(error, UsageError):
        lines = [error.message]
        if error.usage:
            lines.append(f"usage: {error.usage}")
        if error.hint:
            lines.append(error.hint)
        return Outcome.USAGE, "\n".join(lines)
    if isinstance(error, Refused):
        return Outcome.REFUSED, str(error)
    if isinstance(error, KajitoriError):
        return Outcome.FAILED, str(error)
    explained = explain(error)
    if explained is not None:
        return Outcome.FAILED, explained
    return Outcome.ERROR, ""
