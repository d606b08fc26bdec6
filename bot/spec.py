"""Command specs: what a command is called, takes, needs, and which handler runs it.

Each feature package in `commands/` declares its `CommandSpec`s; the registry, the parser,
`help` and the access check all read from them, so a command is described in one place.
A handler receives a `Context` and answers with a `Message`, a `Plan` (something to change,
which the dispatcher puts through the guardrails) or a `Decision` on a pending request.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bot.errors import UsageError, did_you_mean
from bot.grammar import FLAGS, CountChange, Token, parse_count, parse_duration, tokenize
from bot.jobs.locks import DeployLocks
from bot.jobs.manager import JobManager
from bot.messages import Message
from bot.model import JobRecord, Origin
from bot.plan import JobBody, Plan, Precheck
from bot.services import Services


class ArgKind(StrEnum):
    WORD = "word"
    COUNT = "count"  # 5, +2, -1
    DURATION = "duration"  # 30m, 2h
    REST = "rest"  # the rest of the text, verbatim


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind = ArgKind.WORD
    optional: bool = False
    # An optional argument introduced by a keyword: `db open main staging for 2h`.
    keyword: str | None = None


@dataclass(frozen=True)
class CommandSpec:
    name: str  # may be two words: "scale out", "db open"
    usage: str
    summary: str
    handler: Handler
    permission: str  # checked as "PERMISSION:ENV" when the command names an environment
    args: tuple[Arg, ...] = ()
    flags: frozenset[str] = frozenset()
    # Members need no permission (help); approvals are checked by their own rule.
    open_to_all: bool = False
    examples: tuple[str, ...] = ()
    details: str = ""
    # What this command's own flags do (the common ones are described in `FLAG_HELP`).
    flag_help: tuple[tuple[str, str], ...] = ()

    def describe_flag(self, flag: str) -> str:
        return dict(self.flag_help).get(flag) or FLAG_HELP.get(flag, "")

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())


@dataclass(frozen=True)
class ParsedCommand:
    spec: CommandSpec
    args: dict[str, Any]
    flags: frozenset[str]
    text: str

    @property
    def dry_run(self) -> bool:
        return "--dry-run" in self.flags

    @property
    def yes(self) -> bool:
        return "--yes" in self.flags

    @property
    def env(self) -> str | None:
        value = self.args.get("env")
        return value if isinstance(value, str) else None

    def word(self, name: str) -> str:
        value = self.args[name]
        assert isinstance(value, str)
        return value

    def optional_word(self, name: str) -> str | None:
        value = self.args.get(name)
        return value if isinstance(value, str) else None

    def count(self, name: str) -> CountChange:
        value = self.args[name]
        assert isinstance(value, CountChange)
        return value

    def duration(self, name: str) -> timedelta | None:
        value = self.args.get(name)
        return value if isinstance(value, timedelta) else None


FLAG_HELP = {
    "--dry-run": "show the plan and its checks, change nothing",
    "--yes": "skip the confirmation of a destructive change (approvers only)",
}


@dataclass
class Registry:
    specs: list[CommandSpec] = field(default_factory=list)
    # By a plan's kind: what takes a job over when the replica running it stopped.
    resumers: dict[str, JobBody] = field(default_factory=dict)
    # By a plan's kind: the job body that runs a plan from its state alone (a stored plan
    # that was approved or confirmed runs through it).
    runners: dict[str, JobBody] = field(default_factory=dict)
    # By a plan's kind: what differs between the world now and the plan's `from` state.
    prechecks: dict[str, Precheck] = field(default_factory=dict)
    # By a plan's kind: what `cancel JOB` offers instead of stopping the job where it is
    # (a deploy that changed the service: roll back, or let ECS finish).
    cancellers: dict[str, Canceller] = field(default_factory=dict)
    # The heading each command is listed under in `help`, by command name.
    groups: dict[str, str] = field(default_factory=dict)

    def add(self, spec: CommandSpec, group: str = "other") -> None:
        if any(s.name == spec.name for s in self.specs):
            raise ValueError(f"command {spec.name!r} declared twice")
        self.specs.append(spec)
        self.groups[spec.name] = group

    def grouped(self) -> dict[str, list[CommandSpec]]:
        """The commands under their headings, in the order they were added."""
        sections: dict[str, list[CommandSpec]] = {}
        for spec in self.specs:
            sections.setdefault(self.groups.get(spec.name, "other"), []).append(spec)
        return sections

    def find(self, words: list[str]) -> CommandSpec | None:
        """The spec whose name is the longest prefix of `words`."""
        best: CommandSpec | None = None
        for spec in self.specs:
            n = len(spec.words)
            if tuple(w.lower() for w in words[:n]) == spec.words and (
                best is None or n > len(best.words)
            ):
                best = spec
        return best

    def group(self, word: str) -> list[CommandSpec]:
        return [s for s in self.specs if s.words[0] == word.lower()]

    def parse(self, text: str) -> ParsedCommand:
        text = text.strip()
        try:
            tokens = tokenize(text)
        except UsageError as error:
            # Unclosed quote: the usage line of the command it was meant for, if one is known.
            error.usage = self.usage_for(text.split())
            error.hint = error.hint or "close the quote, or leave the quotes out"
            raise
        if not tokens:
            raise UsageError("empty command", hint="type `help` to see what I can do")
        words = [t.value for t in tokens if not t.quoted]
        spec = self.find(words)
        if spec is None:
            raise self.unknown_command(words or [tokens[0].value])
        return _bind(spec, text, tokens[len(spec.words) :])

    def usage_for(self, words: list[str]) -> str | None:
        """The usage line(s) of the command (or group) `words` start with."""
        spec = self.find(words)
        if spec is not None:
            return spec.usage
        group = self.group(words[0]) if words else []
        return "\n".join(s.usage for s in group) or None

    def unknown_command(self, words: list[str]) -> UsageError:
        """`deplyo`, `scale otu`: what was meant, if it is close to a command, and its usage."""
        first = words[0]
        group = self.group(first)
        if group:
            second = words[1] if len(words) > 1 else ""
            close = did_you_mean(second, [s.words[1] for s in group if len(s.words) > 1])
            if second and close is not None:
                meant = self.find([first, close])
                assert meant is not None
                return UsageError(
                    f"unknown command `{first} {second}`: did you mean `{meant.name}`?",
                    usage=meant.usage,
                )
            return UsageError(f"what should `{first}` do?", usage="\n".join(s.usage for s in group))
        commands = list(dict.fromkeys(s.words[0] for s in self.specs))
        close = did_you_mean(first, commands)
        if close is None:
            return UsageError(
                f"unknown command {first!r}",
                hint=f"known: {', '.join(commands)}; type `help` to see the commands",
            )
        return UsageError(
            f"unknown command {first!r}: did you mean `{close}`?",
            usage="\n".join(s.usage for s in self.group(close)),
            hint="type `help` to see the commands",
        )


# Letters and digits of any script (an environment alias may be `本番`), and . _ : / @ + -.
_IDENTIFIER = re.compile(r"[^\W_][\w.:/@+-]*")


def _bind(spec: CommandSpec, text: str, tokens: list[Token]) -> ParsedCommand:
    def fail(message: str) -> UsageError:
        return UsageError(message, usage=spec.usage)

    flags: set[str] = set()
    values: dict[str, Any] = {}
    rest_arg = next((a for a in spec.args if a.kind is ArgKind.REST), None)
    positional: list[Token] = []
    rest_from: int | None = None
    needed = [a for a in spec.args if a.kind is not ArgKind.REST and a.keyword is None]
    for token in tokens:
        if rest_arg is not None and len(positional) >= len(needed) and rest_from is None:
            if token.value in FLAGS and not token.quoted:
                flags.add(token.value)
                continue
            rest_from = token.start
            break
        if token.value.startswith("--") and not token.quoted:
            if token.value not in spec.flags:
                allowed = ", ".join(sorted(spec.flags)) or "none"
                raise fail(f"unknown option {token.value} for `{spec.name}` (options: {allowed})")
            flags.add(token.value)
            continue
        positional.append(token)

    queue = list(positional)
    for arg in spec.args:
        if arg.kind is ArgKind.REST:
            raw = text[rest_from:].strip() if rest_from is not None else ""
            if not raw and not arg.optional:
                raise fail(f"missing {arg.name.upper()}")
            values[arg.name] = raw or None
            continue
        if arg.keyword is not None:
            if queue and queue[0].value.lower() == arg.keyword and not queue[0].quoted:
                queue.pop(0)
                if not queue:
                    raise fail(f"missing {arg.name.upper()} after `{arg.keyword}`")
                values[arg.name] = _convert(arg, queue.pop(0), fail)
            else:
                values[arg.name] = None
            continue
        if not queue:
            if arg.optional:
                values[arg.name] = None
                continue
            raise fail(f"missing {arg.name.upper()}")
        values[arg.name] = _convert(arg, queue.pop(0), fail)
    if queue:
        raise fail(f"unexpected {queue[0].value!r}")
    return ParsedCommand(spec=spec, args=values, flags=frozenset(flags), text=text)


def _convert(arg: Arg, token: Token, fail: Callable[[str], UsageError]) -> object:
    try:
        if arg.kind is ArgKind.COUNT:
            return parse_count(token.value)
        if arg.kind is ArgKind.DURATION:
            return parse_duration(token.value)
    except UsageError as error:
        raise fail(error.message) from None
    if not _IDENTIFIER.fullmatch(token.value):
        raise fail(f"bad {arg.name.upper()} {token.value!r}: use letters, digits and . _ : / @ + -")
    return token.value


@dataclass(frozen=True)
class Decision:
    """A handler's answer that decides a pending request (`approve 3`, `deny 3`)."""

    request_id: int
    approve: bool


@dataclass(frozen=True)
class Context:
    """What a handler receives: the parsed command, who asked from where, the ports, and the
    kernel's own parts (locks, jobs, the registry) for the commands about them."""

    command: ParsedCommand
    origin: Origin
    services: Services
    locks: DeployLocks
    jobs: JobManager
    registry: Registry

    @property
    def member(self) -> str:
        return self.origin.member


Answer = Message | Plan | Decision
Handler = Callable[[Context], Awaitable[Answer]]
# None: the job can simply stop where it is; a Plan: a choice to confirm first.
Canceller = Callable[[Context, JobRecord], Awaitable[Plan | None]]
