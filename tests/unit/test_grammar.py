from datetime import timedelta

import pytest

from bot.errors import UsageError
from bot.grammar import CountChange, parse_count, parse_duration, tokenize
from commands import build_registry

registry = build_registry()


def test_quoted_arguments_keep_spaces_and_smart_quotes() -> None:
    values = [t.value for t in tokenize('lock api staging "release 2.3" \u201cbig one\u201d')]
    assert values == ["lock", "api", "staging", "release 2.3", "big one"]


def test_unclosed_quote_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unclosed quote"):
        tokenize('lock api "staging')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1d", timedelta(days=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "m", "0m", "30x", "-5m", "1h 30m", "h1"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_counts_absolute_and_relative() -> None:
    assert parse_count("5") == CountChange(5, relative=False)
    assert parse_count("+2").target(3) == 5
    assert parse_count("-1").target(3) == 2
    with pytest.raises(UsageError):
        parse_count("five")


def test_lock_reason_is_taken_verbatim() -> None:
    parsed = registry.parse('lock api staging "testing" the new cache')
    assert parsed.word("service") == "api"
    assert parsed.args["reason"] == '"testing" the new cache'


def test_missing_argument_names_it_and_shows_usage() -> None:
    with pytest.raises(UsageError) as caught:
        registry.parse("lock api")
    assert caught.value.message == "missing ENV"
    assert caught.value.usage == "lock SERVICE ENV [REASON...]"


def test_extra_argument_is_refused() -> None:
    with pytest.raises(UsageError, match="unexpected 'now'"):
        registry.parse("unlock api staging now")


def test_unknown_option_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(UsageError, match="unknown option --force"):
        registry.parse("status api staging --force")


def test_unknown_command_points_to_help() -> None:
    with pytest.raises(UsageError) as caught:
        registry.parse("frobnicate api")
    assert "unknown command 'frobnicate'" in caught.value.message
    assert caught.value.hint is not None and "help" in caught.value.hint


def test_command_words_are_case_insensitive() -> None:
    assert registry.parse("STATUS api staging").spec.name == "status"
