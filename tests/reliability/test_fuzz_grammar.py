"""Fuzzing the chat grammar through the real dispatcher, with the whole bot behind it (the
sandbox's AWS, the store, the job manager): whatever a member types, the answer is a reply
that says what was wrong, never an internal error and never a traceback."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Bot
from bot.model import Origin, Outcome
from tests.support.chat import RecordingChat

COMMAND_WORDS = [
    "help",
    "status",
    "deploy",
    "rollback",
    "scale",
    "scale out",
    "scale up",
    "limits",
    "db",
    "db open",
    "db close",
    "db list",
    "sql",
    "history",
    "lock",
    "unlock",
    "approve",
    "deny",
    "jobs",
    "DEPLOY",
    "Scale Out",
    "hlep",
]

ARGUMENTS = [
    # names, right and wrong
    "api",
    "web",
    "worker",
    "main",
    "nosuch",
    "staging",
    "production",
    "qa",
    "v1",
    "v2",
    "v3",
    "broken",
    "v999",
    "latest",
    # numbers, counts, sizes, durations, ids
    "0",
    "1",
    "5",
    "+1",
    "-1",
    "+99999",
    "-0",
    "999999",
    "1e3",
    "99999999999999999999999",
    "t3.large",
    "t3.nano",
    "db.r6g.large",
    "for",
    "30m",
    "2h",
    "0m",
    "99999d",
    "1h30m",
    "m30",
    # flags
    "--dry-run",
    "--yes",
    "--now",
    "--force",
    "--",
    "-",
    "---",
    # SQL
    "SELECT 1",
    "SELECT * FROM users; DROP TABLE users",
    "DELETE FROM users",
    "select sleep(100)",
    # quotes and odd characters
    '"',
    "“",
    "”",
    "'",
    "‘unclosed",
    '"quoted reason"',
    "“typographic reason”",
    "\x00",
    "\u202e",
    "\ufeff",
    "🚀",
    "a" * 300,
    "\n",
    "\t",
    "%s",
    "{}",
    "<script>",
    "${jndi:ldap://x}",
    "@kajitori+",
    "`",
    "\\",
]

tokens = st.one_of(
    st.sampled_from(ARGUMENTS),
    st.text(max_size=12),
    st.from_regex(r"[+-]?\d{1,30}", fullmatch=True),
)


def slot(*good: str) -> st.SearchStrategy[str]:
    """Mostly a value that fits the argument, sometimes anything at all."""
    fitting = st.sampled_from(good)
    # one_of would pick each branch about as often; a draw from eight weighs them 7:1.
    return st.sampled_from(range(8)).flatmap(lambda n: tokens if n == 7 else fitting)


def optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


SERVICE = slot("api", "web", "worker", "nosuch")
ENV = slot("staging", "production", "qa")
VERSION = slot("v1", "v2", "v3", "broken", "v404")
COUNT = slot("1", "2", "3", "+1", "-1", "0", "+40", "-9")
SIZE = slot("t3.large", "t3.small", "m5.xlarge", "db.r6g.large", "z9.huge")
DATABASE = slot("main", "other")
DURATION = slot("30m", "2h", "90s", "48h")
NUMBER = slot("1", "2", "3", "42")
FLAGS = st.sampled_from(range(3)).flatmap(
    lambda n: (
        st.lists(st.sampled_from(["--dry-run", "--yes", "--now", "--force"]), max_size=2)
        if n == 2
        else st.just([])
    )
)
SQL = slot("SELECT 1", "SELECT id FROM users LIMIT 3", "DELETE FROM users", "SELECT")
REASON = st.lists(tokens, max_size=4).map(" ".join)


def shaped(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts, FLAGS).map(
        lambda values: " ".join(v for v in (*values[:-1], *values[-1]) if v)
    )


well_formed = st.one_of(
    shaped(st.just("status"), SERVICE, ENV),
    shaped(st.just("deploy"), SERVICE, ENV, VERSION),
    shaped(st.just("rollback"), SERVICE, ENV, optional(VERSION)),
    shaped(st.just("scale out"), SERVICE, ENV, COUNT),
    shaped(st.just("scale up"), slot("web", "worker", "main", "api"), ENV, SIZE),
    shaped(st.just("limits"), optional(ENV)),
    shaped(st.just("db open"), DATABASE, ENV, optional(DURATION.map("for {}".format))),
    shaped(st.just("db close"), NUMBER),
    shaped(st.just("db list")),
    shaped(st.just("sql"), DATABASE, ENV, SQL),
    shaped(st.just("history"), optional(SERVICE), optional(ENV)),
    shaped(st.just("lock"), SERVICE, ENV, REASON),
    shaped(st.just("unlock"), SERVICE, ENV),
    shaped(st.sampled_from(["approve", "deny"]), NUMBER),
    shaped(st.just("jobs")),
    shaped(st.just("help"), optional(st.sampled_from(COMMAND_WORDS))),
)
anything = st.one_of(
    st.builds(
        lambda head, rest: " ".join([head, *rest]),
        st.sampled_from(COMMAND_WORDS),
        st.lists(tokens, max_size=7),
    ),
    st.text(max_size=200),
    st.lists(st.sampled_from(ARGUMENTS + COMMAND_WORDS), max_size=10).map(" ".join),
)
ALICE = Origin(adapter="local", channel="local", member="local:alice")
others = st.builds(
    Origin,
    adapter=st.just("local"),
    channel=st.sampled_from(["local", "slack:C0DEMO", "slack:CNOTALLOWED"]),
    member=st.sampled_from(["local:alice", "local:carol", "local:dave", "local:mallory"]),
)
# Half the time an SRE in an allowed channel, so that valid commands get past the guards.
origins = st.sampled_from(range(2)).flatmap(lambda n: st.just(ALICE) if n == 0 else others)

TRACEBACK_MARKS = ("Traceback", 'File "', "internal error", "Exception:")


def assert_clean(text: str) -> None:
    for mark in TRACEBACK_MARKS:
        assert mark not in text, text


FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def answer_is_clean(bot: Bot, chat: RecordingChat, origin: Origin, text: str) -> None:
    result = await bot.dispatcher.handle(origin, text)
    event(f"{result.command.spec.name if result.command else '-'}: {result.outcome.value}")
    assert result.outcome is not Outcome.ERROR, (text, result.text)
    assert result.messages, text
    for message in result.messages:
        assert_clean(message.plain())
    # Jobs that valid commands started post into their threads: no traceback there either.
    for posted in chat.posted:
        assert_clean(posted.text)


@FUZZ
@given(origin=origins, text=well_formed)
async def test_commands_with_odd_arguments_get_a_clean_answer(
    bot: Bot, chat: RecordingChat, origin: Origin, text: str
) -> None:
    await answer_is_clean(bot, chat, origin, text)


@FUZZ
@given(origin=origins, text=anything)
async def test_any_text_gets_a_clean_answer(
    bot: Bot, chat: RecordingChat, origin: Origin, text: str
) -> None:
    await answer_is_clean(bot, chat, origin, text)
