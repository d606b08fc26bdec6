"""Is this text exactly one statement that only reads? Checked before anything is connected.

The database enforces it again (the temporary user can only SELECT, the transaction is READ
ONLY, the connection refuses multiple statements); this check gives the member a clear answer
at once and keeps writes, file output, locking reads and tricks with comments from ever
reaching the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from bot.errors import Refused

MAX_STATEMENT_LENGTH = 20_000

ALLOWED = "SELECT, SHOW, EXPLAIN and DESCRIBE"
ONE_ALLOWED = "one SELECT, SHOW, EXPLAIN or DESCRIBE statement"

# Functions that act outside the result: server-side locks, files, sequences, replication waits.
_SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        "GET_LOCK",
        "RELEASE_LOCK",
        "RELEASE_ALL_LOCKS",
        "LOAD_FILE",
        "NEXTVAL",
        "SETVAL",
        "MASTER_POS_WAIT",
        "SOURCE_POS_WAIT",
        "MASTER_GTID_WAIT",
        "WAIT_FOR_EXECUTED_GTID_SET",
    }
)

# Tokens whose text is data or a quoted name, never a keyword.
_QUOTED = frozenset(
    {
        TokenType.STRING,
        TokenType.IDENTIFIER,
        TokenType.NATIONAL_STRING,
        TokenType.RAW_STRING,
        TokenType.BIT_STRING,
        TokenType.HEX_STRING,
        TokenType.BYTE_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.UNICODE_STRING,
    }
)

_TYPOGRAPHIC_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class ReadStatement:
    text: str  # what is sent to the database: the statement as written, without a final `;`
    kind: str  # SELECT, SHOW, EXPLAIN or DESCRIBE


def normalize_chat_sql(text: str) -> str:
    """Chat apps turn straight quotes into typographic ones; SQL needs them straight."""
    return text.translate(_TYPOGRAPHIC_QUOTES)


def check_read_only(sql: str) -> ReadStatement:
    text = _strip_terminator(sql)
    if not text:
        raise Refused(f"no statement given: sql takes {ONE_ALLOWED}")
    if len(text) > MAX_STATEMENT_LENGTH:
        raise Refused(f"the statement is longer than {MAX_STATEMENT_LENGTH} characters")
    _check_tokens(_tokenize(text))
    try:
        statements = [s for s in sqlglot.parse(text, read="mysql") if s is not None]
    except ParseError as error:
        raise Refused(
            f"cannot read that as one MySQL statement: {_describe(error)}",
            hint=f"sql takes {ONE_ALLOWED}",
        ) from None
    if len(statements) != 1:
        raise Refused(f"sql runs one statement at a time; found {len(statements)}")
    statement = statements[0]
    kind = _check_statement(statement)
    return ReadStatement(text=text, kind=kind)


def _strip_terminator(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _tokenize(text: str) -> list[Token]:
    try:
        return list(Dialect.get_or_raise("mysql").tokenize(text))
    except TokenError as error:
        raise Refused(f"cannot read that as one MySQL statement: {error}") from None


def _check_tokens(tokens: list[Token]) -> None:
    for token in tokens:
        for comment in token.comments:
            body = comment.lstrip()
            # MySQL runs `/*! ... */` and MariaDB `/*M! ... */` as SQL: what a parser skips as
            # a comment would run on the server.
            if body.startswith(("!", "M!", "m!")):
                raise Refused("executable comments (/*! ... */) are run as SQL; remove them")
            if ";" in comment:
                raise Refused("a comment holds a `;`: sql runs one statement, without tricks")
        if token.token_type is TokenType.SEMICOLON:
            raise Refused("sql runs one statement at a time; remove the `;` in the middle")
        if token.token_type not in _QUOTED and token.text.upper() in (
            "OUTFILE",
            "DUMPFILE",
        ):
            raise Refused(
                f"SELECT ... INTO {token.text.upper()} writes a file on the database server; "
                "not allowed (large results come back as a CSV attachment)"
            )


def _check_statement(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Subquery):
        statement = statement.unnest()
    if isinstance(statement, exp.Select | exp.SetOperation):
        _check_query(statement)
        return "SELECT"
    if isinstance(statement, exp.Show):
        return "SHOW"
    if isinstance(statement, exp.Command) and str(statement.this).upper() == "SHOW":
        return "SHOW"
    if isinstance(statement, exp.Describe):
        style = str(statement.args.get("style") or "").upper()
        if style == "ANALYZE":
            raise Refused("EXPLAIN ANALYZE runs the statement; use EXPLAIN")
        target = statement.this
        if isinstance(target, exp.Table):
            return "DESCRIBE"
        if isinstance(target, exp.Subquery):
            target = target.unnest()
        if isinstance(target, exp.Select | exp.SetOperation):
            _check_query(target)
            return "EXPLAIN"
        raise Refused(f"EXPLAIN is allowed for reads only, not for {_kind(target)}")
    raise Refused(f"sql runs only {ALLOWED}; this is {_kind(statement)}")


def _check_query(query: exp.Expr) -> None:
    for node in query.walk():
        if isinstance(node, exp.Into):
            raise Refused("SELECT ... INTO stores the result on the server; not allowed")
        if isinstance(node, exp.Lock):
            raise Refused(
                "locking reads (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) hold locks on the "
                "database; not allowed"
            )
        if isinstance(node, exp.DML | exp.Create | exp.Drop | exp.Alter | exp.Command):
            raise Refused(f"a read may not contain {_kind(node)}")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name in _SIDE_EFFECT_FUNCTIONS:
                raise Refused(f"{name}() acts outside the result; not allowed in sql")


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    key = node.key.upper()
    return {"DESCRIBE": "EXPLAIN"}.get(key, key)


def _describe(error: ParseError) -> str:
    if not error.errors:
        return str(error).splitlines()[0]
    first = error.errors[0]
    near = str(first.get("highlight") or "").strip()
    where = f" at line {first.get('line')}, column {first.get('col')}"
    return f"{first.get('description')}{where}" + (f" (near `{near}`)" if near else "")
