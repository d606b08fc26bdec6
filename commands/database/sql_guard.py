"""Is this text exactly one statement that only reads? Checked before anything is connected.

Three readings must agree before a statement is let through:

1. MariaDB's lexer, reproduced in `commands.database.sql_lexer`: where strings, `names` and comments are,
   and the tokens in between. Anything it could read in two ways is refused, and comments are
   blanked out of what is sent, so nothing can hide in one.
2. Rules on those tokens, which see every token the server will see, including the ones a
   parser may drop: one statement, starting with a read keyword; no `;`, no locking clause
   (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) wherever it stands, no INTO, no `:=`, no
   function that acts outside the result (GET_LOCK, SLEEP, LOAD_FILE, ...).
3. sqlglot's tokens and parse tree (MySQL dialect): its strings and names must be exactly the
   lexer's, and the tree must be a read of the kind the first keyword says.

The database enforces it again (the temporary user can only SELECT, the transaction is READ
ONLY, the connection refuses multiple statements); this check gives the member a clear answer
at once and keeps the rest from ever reaching the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token as SqlglotToken
from sqlglot.tokenizer_core import TokenType

from bot.errors import Refused
from commands.database.sql_lexer import WHITESPACE, Kind, Lexed, Token, lex, where

MAX_STATEMENT_LENGTH = 20_000

ALLOWED = "SELECT, SHOW, EXPLAIN and DESCRIBE"
ONE_ALLOWED = "one SELECT, SHOW, EXPLAIN or DESCRIBE statement"

_WAITS = "it waits on replication, holding the connection"
_LOCKING_SERVICE = "it takes or releases MySQL locking-service locks"
# Functions that act outside the result: server-wide locks, files, sequences, waits.
SIDE_EFFECT_FUNCTIONS = {
    "GET_LOCK": "it takes a named lock on the whole server, held until the session ends",
    "RELEASE_LOCK": "it releases a named lock",
    "RELEASE_ALL_LOCKS": "it releases named locks",
    "SLEEP": "it holds the connection doing nothing",
    "BENCHMARK": "it runs an expression over and over, holding the connection",
    "LOAD_FILE": "it reads a file on the database server",
    "NEXTVAL": "it advances a sequence",
    "SETVAL": "it changes a sequence",
    "MASTER_POS_WAIT": _WAITS,
    "SOURCE_POS_WAIT": _WAITS,
    "MASTER_GTID_WAIT": _WAITS,
    "WAIT_FOR_EXECUTED_GTID_SET": _WAITS,
    "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS": _WAITS,
    "SERVICE_GET_READ_LOCKS": _LOCKING_SERVICE,
    "SERVICE_GET_WRITE_LOCKS": _LOCKING_SERVICE,
    "SERVICE_RELEASE_LOCKS": _LOCKING_SERVICE,
}

# The first keyword decides what the server runs; the parse tree must agree with it.
_KINDS_BY_FIRST_WORD = {
    "SELECT": {"SELECT"},
    "WITH": {"SELECT"},
    "TABLE": {"SELECT"},
    "SHOW": {"SHOW"},
    "EXPLAIN": {"EXPLAIN", "DESCRIBE"},
    "DESCRIBE": {"EXPLAIN", "DESCRIBE"},
    "DESC": {"EXPLAIN", "DESCRIBE"},
}
_IN_PARENTHESES = {"SELECT", "WITH", "TABLE"}

_LOCKING = (
    "locking reads (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) are not allowed: they hold "
    "locks on the database's rows; use a plain SELECT"
)
_INTO = "large results come back as a CSV attachment; use a plain SELECT"

# sqlglot tokens whose text is data or a quoted name, never a keyword.
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
# 0x41 and 0b01 are numbers without quotes, which sqlglot files with the quoted forms.
_UNQUOTED_LITERALS = frozenset({TokenType.HEX_STRING, TokenType.BIT_STRING})

_ASCII_WHITESPACE = "".join(sorted(WHITESPACE))
_TYPOGRAPHIC_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class ReadStatement:
    # What is sent to the database: the statement as written, its comments blanked out,
    # without a final `;`.
    text: str
    kind: str  # SELECT, SHOW, EXPLAIN or DESCRIBE


def normalize_chat_sql(text: str) -> str:
    """Chat apps turn straight quotes into typographic ones; SQL needs them straight."""
    return text.translate(_TYPOGRAPHIC_QUOTES)


def check_read_only(sql: str) -> ReadStatement:
    # Only MariaDB's whitespace: str.strip() would also drop U+00A0, U+2028, U+FEFF, ...
    source = sql.strip(_ASCII_WHITESPACE)
    if len(source) > MAX_STATEMENT_LENGTH:
        raise Refused(f"the statement is longer than {MAX_STATEMENT_LENGTH} characters")
    lexed = lex(source)
    tokens = _without_terminator(lexed.tokens)
    if not tokens:
        raise Refused(f"no statement given: sql takes {ONE_ALLOWED}")
    text = lexed.text[: tokens[-1].end]
    kinds = _check_tokens(text, tokens)
    _check_same_reading(text, lexed)
    try:
        statements = [s for s in sqlglot.parse(text, read="mysql") if s is not None]
    except ParseError as error:
        raise Refused(
            f"cannot read that as one MySQL statement: {_describe(error)}",
            hint=f"sql takes {ONE_ALLOWED}",
        ) from None
    except TokenError as error:
        raise Refused(f"cannot read that as one MySQL statement: {error}") from None
    if len(statements) != 1:
        raise Refused(f"sql runs one statement at a time; found {len(statements)}")
    kind = _check_statement(statements[0])
    if kind not in kinds:
        raise Refused(
            f"cannot read that as one statement the way the database does: it starts with "
            f"{tokens[0].upper} but reads as {kind}; write it more plainly"
        )
    return ReadStatement(text=text.strip(_ASCII_WHITESPACE), kind=kind)


def _without_terminator(tokens: list[Token]) -> list[Token]:
    end = len(tokens)
    while end and tokens[end - 1].kind is Kind.SYMBOL and tokens[end - 1].text == ";":
        end -= 1
    return tokens[:end]


def _check_tokens(text: str, tokens: list[Token]) -> set[str]:
    """Rules on the tokens the server will see; returns the kinds the first keyword allows."""
    for token in tokens:
        if token.kind is Kind.SYMBOL and token.text == ";":
            raise Refused(
                f"a `;` in the middle (at {where(text, token.start)}) is not allowed: sql runs "
                "one statement at a time; send each statement on its own"
            )
    kinds = _first_word_kinds(tokens)
    for index, token in enumerate(tokens):
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind is Kind.SYMBOL and token.text == ":":
            raise Refused(
                f"`:=` or `:` (at {where(text, token.start)}) is not allowed: it assigns a "
                "variable; compare with = instead"
            )
        if token.kind in (Kind.WORD, Kind.NAME) and _is_call(after):
            reason = SIDE_EFFECT_FUNCTIONS.get(token.upper)
            if reason is not None:
                raise Refused(
                    f"{token.upper}() is not allowed: {reason}; use a plain SELECT without it"
                )
        if token.kind is not Kind.WORD:
            continue
        next_word = after.upper if after is not None and after.kind is Kind.WORD else ""
        _check_word(token.upper, next_word)
    explains = tokens[0].upper in ("EXPLAIN", "DESCRIBE", "DESC")
    if explains and len(tokens) > 1 and tokens[1].upper == "ANALYZE":
        raise Refused("EXPLAIN ANALYZE is not allowed: it runs the statement; use EXPLAIN")
    return kinds


def _first_word_kinds(tokens: list[Token]) -> set[str]:
    index = 0
    while index < len(tokens) and tokens[index].kind is Kind.SYMBOL and tokens[index].text == "(":
        index += 1
    if index == len(tokens) or tokens[index].kind is not Kind.WORD:
        raise Refused(f"cannot read that as a statement: sql takes {ONE_ALLOWED}")
    word = tokens[index].upper
    kinds = _KINDS_BY_FIRST_WORD.get(word)
    if kinds is None or (index > 0 and word not in _IN_PARENTHESES):
        raise Refused(f"sql runs only {ALLOWED}; this is {word}")
    return kinds


def _is_call(after: Token | None) -> bool:
    return after is not None and after.kind is Kind.SYMBOL and after.text == "("


def _check_word(word: str, next_word: str) -> None:
    if word == "INTO":
        if next_word in ("OUTFILE", "DUMPFILE"):
            raise Refused(
                f"SELECT ... INTO {next_word} is not allowed: it writes a file on the database "
                f"server; {_INTO}"
            )
        raise Refused(
            f"SELECT ... INTO is not allowed: it stores the result on the server; {_INTO}"
        )
    if word in ("OUTFILE", "DUMPFILE"):
        raise Refused(
            f"INTO {word} is not allowed: it writes a file on the database server; {_INTO}"
        )
    if (word, next_word) in (("FOR", "UPDATE"), ("FOR", "SHARE"), ("LOCK", "IN")):
        raise Refused(_LOCKING)
    if (word, next_word) == ("NEXT", "VALUE"):
        raise Refused(
            "NEXT VALUE FOR is not allowed: it advances a sequence; "
            "use PREVIOUS VALUE FOR or LASTVAL() to read one"
        )


def _check_same_reading(text: str, lexed: Lexed) -> None:
    """sqlglot must find the strings and names where MariaDB's lexer does, and skip nothing."""
    try:
        tokens: list[SqlglotToken] = list(Dialect.get_or_raise("mysql").tokenize(text))
    except TokenError as error:
        raise Refused(f"cannot read that as one MySQL statement: {error}") from None
    quoted: set[tuple[int, int]] = set()
    covered = [False] * len(text)
    for token in tokens:
        if token.comments:
            _differently("the parser finds a comment where the database finds none")
        source = text[token.start : token.end + 1]
        if token.token_type in _QUOTED:
            if source[-1:] in ("'", '"', "`"):
                quoted.add((token.start + source.index(source[-1]), token.end + 1))
            elif token.token_type not in _UNQUOTED_LITERALS:
                _differently(f"the parser reads {source!r} as quoted text")
        covered[token.start : token.end + 1] = [True] * len(source)
    expected = {(start, end) for start, end in lexed.quoted_spans() if end <= len(text)}
    if quoted != expected:
        _differently("the parser and the database find different strings or quoted names")
    for index, char in enumerate(text):
        if not covered[index] and char not in WHITESPACE:
            _differently(f"the parser skips {char!r} at {where(text, index)}")


def _differently(detail: str) -> None:
    raise Refused(
        f"a statement that this check and the database would read differently is not "
        f"allowed ({detail}); write it more plainly"
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
            raise Refused("EXPLAIN ANALYZE is not allowed: it runs the statement; use EXPLAIN")
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
            raise Refused(
                f"SELECT ... INTO is not allowed: it stores the result on the server; {_INTO}"
            )
        if isinstance(node, exp.Lock):
            raise Refused(_LOCKING)
        if isinstance(node, exp.DML | exp.Create | exp.Drop | exp.Alter | exp.Command):
            raise Refused(f"a read may not contain {_kind(node)}")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            reason = SIDE_EFFECT_FUNCTIONS.get(name)
            if reason is not None:
                raise Refused(f"{name}() is not allowed: {reason}; use a plain SELECT without it")


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
    where_ = f" at line {first.get('line')}, column {first.get('col')}"
    return f"{first.get('description')}{where_}" + (f" (near `{near}`)" if near else "")
