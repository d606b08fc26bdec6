"""Forgiving input through the real dispatcher and store: names in any case and by alias,
"did you mean" for every unknown name, the usage line for every grammar error, one exit
code for them all, `--yes` refused with a reason, and `help` grouped with its flags."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.bootstrap import Bot, build_bot
from adapters.store.sqlite import SqliteStore
from bot.config import Config, Settings
from bot.model import Origin, Outcome
from commands import build_registry
from tests.support.chat import RecordingChat


@pytest.fixture
async def bot(demo_config: Config, chat: RecordingChat) -> AsyncIterator[Bot]:
    # Nothing here reaches AWS: names are resolved before any handler runs.
    built = await build_bot(
        demo_config,
        Settings(aws_endpoint_url="http://127.0.0.1:9"),
        store=await SqliteStore.open(":memory:"),
        chats=[chat],
    )
    try:
        yield built
    finally:
        await built.close()


async def say(bot: Bot, text: str, member: str = "local:alice") -> tuple[Outcome, str]:
    result = await bot.dispatcher.handle(
        Origin(adapter="local", channel="local", member=member), text
    )
    return result.outcome, result.text


async def test_environment_and_service_names_match_in_any_case_and_by_alias(bot: Bot) -> None:
    outcome, text = await say(bot, "lock API Staging release freeze")
    assert outcome is Outcome.OK and "api/staging locked by local:alice" in text
    outcome, text = await say(bot, "unlock api STAGING")
    assert outcome is Outcome.OK and "api/staging unlocked" in text
    outcome, text = await say(bot, "lock Web prod incident")
    assert outcome is Outcome.OK and "web/production locked by local:alice" in text
    outcome, text = await say(bot, "unlock web 本番")
    assert outcome is Outcome.OK and "web/production unlocked" in text


async def test_permissions_apply_to_the_environment_an_alias_names(bot: Bot) -> None:
    outcome, text = await say(bot, "lock api PROD", member="local:carol")
    assert outcome is Outcome.REFUSED and "lacks permission lock:production" in text
    outcome, text = await say(bot, "lock api Staging", member="local:carol")
    assert outcome is Outcome.OK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "lock api stagign",
            [
                "unknown environment 'stagign': did you mean `staging`?",
                "usage: lock SERVICE ENV [REASON...]",
                "known: staging, production (aliases: prod, 本番)",
            ],
        ),
        (
            "status api 本蕃",
            ["unknown environment '本蕃'", "usage: status", "known: staging, production"],
        ),
        (
            "lock apj staging",
            [
                "unknown service 'apj' in staging: did you mean `api`?",
                "known in staging: api, web, worker",
            ],
        ),
        (
            "db open mian staging",
            [
                "unknown database 'mian' in staging: did you mean `main`?",
                "usage: db open DATABASE ENV [for DURATION]",
                "known in staging: main",
            ],
        ),
        (
            "scale up mian prod db.r6g.large",
            [
                "unknown service or database 'mian' in production: did you mean `main`?",
                "known in production: api, web, worker, main",
            ],
        ),
        (
            "deplyo api staging v2",
            [
                "unknown command 'deplyo': did you mean `deploy`?",
                "usage: deploy SERVICE ENV VERSION [--dry-run]",
            ],
        ),
        (
            "staus api staging",
            ["unknown command 'staus': did you mean `status`?", "usage: status [SERVICE] [ENV]"],
        ),
        (
            "scale otu web staging +2",
            [
                "unknown command `scale otu`: did you mean `scale out`?",
                "usage: scale out SERVICE ENV COUNT|+N|-N [--dry-run] [--yes]",
            ],
        ),
        (
            "frobnicate",
            [
                "unknown command 'frobnicate'",
                "known: deploy, rollback, restart, promote, abort, scale, limits, status, db, sql",
                "type `help` to see the commands",
            ],
        ),
        (
            'lock api staging "release 2.3',
            [
                "unclosed quote",
                "usage: lock SERVICE ENV [REASON...]",
                "close the quote, or leave the quotes out",
            ],
        ),
        ('"lock api staging', ["unclosed quote", "close the quote"]),
        (
            "deploy api staging v2 --yes",
            ["unknown option --yes for `deploy`", "usage: deploy SERVICE ENV VERSION"],
        ),
        ("help deplyo", ["no command 'deplyo': did you mean `help deploy`?"]),
    ],
)
async def test_every_unknown_name_and_grammar_error_is_a_usage_error_that_says_what_to_type(
    bot: Bot, text: str, expected: list[str]
) -> None:
    outcome, reply = await say(bot, text)
    assert outcome is Outcome.USAGE, reply
    for part in expected:
        assert part in reply, reply
    assert await bot.services.store.get_lock("api/staging") is None


async def test_yes_is_refused_with_the_reason_for_a_member_whose_role_does_not_allow_it(
    bot: Bot,
) -> None:
    outcome, text = await say(bot, "rollback api staging --yes", member="local:carol")
    assert outcome is Outcome.REFUSED
    assert "--yes skips the confirmation only for approvers (role sre)" in text
    assert "local:carol has developer" in text
    assert "run it again without --yes and confirm it with `approve ID`" in text
    assert await bot.services.store.get_request(1) is None
    assert await bot.services.store.list_jobs() == []


async def test_help_lists_the_commands_by_group_with_their_flags(bot: Bot) -> None:
    outcome, text = await say(bot, "help", member="local:carol")
    assert outcome is Outcome.OK
    lines = text.splitlines()
    headings = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headings[1:] == [
        "deploy:",
        "capacity:",
        "database:",
        "events:",
        "guardrails and records:",
    ]
    section = lines[lines.index("deploy:") + 1 : lines.index("capacity:")]
    assert any(
        line.startswith("  rollback SERVICE ENV [VERSION] [--dry-run] [--yes]") for line in section
    )
    assert any("db open DATABASE ENV" in line and "(not allowed for you)" in line for line in lines)
    assert lines[-1].startswith("flags: --dry-run: show the plan")
    assert "; --yes: skip the confirmation of a destructive change (approvers only)" in lines[-1]
    outcome, text = await say(bot, "help scale up")
    assert "--now: a database: apply now, not in the maintenance window" in text
    assert "--yes: skip the confirmation of a destructive change (approvers only)" in text


def test_every_flag_a_command_takes_is_in_its_usage_line() -> None:
    for spec in build_registry().specs:
        for flag in spec.flags:
            assert flag in spec.usage, f"{spec.name}: {flag} missing from {spec.usage!r}"
            assert spec.describe_flag(flag), f"{spec.name}: {flag} has no description"
