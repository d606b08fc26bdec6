"""The errors a user can act on, and the one place that turns an error into a reply.

Everything else is an internal error, answered with a reference to the logs.
"""

from __future__ import annotations

from collections.abc import Callable

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
