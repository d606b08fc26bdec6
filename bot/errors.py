"""The errors a user can act on. Everything else is an internal error with a job id."""


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
