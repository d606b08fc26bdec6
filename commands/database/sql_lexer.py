"""A statement split into tokens the way MariaDB's lexer splits it, before any parser sees it.

The guard parses statements with sqlglot, but the server runs them: wherever the two disagree
on where a string, a quoted name or a comment starts and ends, text the guard took for a
comment or a string would run. So the text is first read here by MariaDB's rules (sql_lex.cc,
with backslash escapes on and ANSI_QUOTES off, as the query connection sets its sql_mode),
and anything the two could read differently is refused rather than guessed:

- outside '…', "…" and `…` only printable ASCII and ASCII whitespace;
- comments are `/* … */` (not nested), `# …` and `-- …` (`--` followed by whitespace or the
  end); executable comments (`/*!`, `/*M!`) and optimizer hints (`/*+`) are refused;
- strings end at an unescaped quote: `\\x` and a doubled quote are escapes;
- `…` names end at a single backtick; a doubled one is an escape;
- numbers must not run into words (`1e1FOR` is the number 1e1 and the word FOR to MariaDB).

What reaches the server is the text with every comment blanked out, so a comment cannot hide
anything from the guard however either side reads it.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

from bot.errors import Refused

# MariaDB's whitespace in utf8mb4 (my_isspace): space, \t, \n, \v, \f, \r.
WHITESPACE = frozenset(" \t\n\r\x0b\x0c")
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_$]")
_WORD_CHAR_RUN = re.compile(r"[A-Za-z0-9_$.]+")
# A number as MariaDB ends it: digits, a point, digits, an exponent; or hex and binary forms.
_NUMBER = re.compile(r"0x[0-9A-Fa-f]+|0b[01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]*")
_BIT_DIGITS = re.compile(r"[01]*")


class Part(Enum):
    CODE = "code"
    STRING = "string"  # '…' or "…"
    NAME = "name"  # `…`
    COMMENT = "comment"


@dataclass(frozen=True)
class Region:
    part: Part
    start: int
    end: int  # exclusive


class Kind(Enum):
    WORD = "word"  # a keyword or a bare name
    NUMBER = "number"
    SYMBOL = "symbol"  # one character of punctuation or an operator
    STRING = "string"
    NAME = "name"  # a `quoted` name


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # as written; a NAME without its backticks and with `` as `
    start: int
    end: int  # exclusive, in the source: a NAME's backticks included

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class Lexed:
    text: str  # the statement with comments blanked and code whitespace made plain
    regions: list[Region]
    tokens: list[Token]

    def quoted_spans(self) -> set[tuple[int, int]]:
        return {(r.start, r.end) for r in self.regions if r.part in (Part.STRING, Part.NAME)}


def lex(text: str) -> Lexed:
    """Read `text` as MariaDB would; Refused for anything that could be read two ways."""
    _check_characters_anywhere(text)
    regions = _regions(text)
    for region in regions:
        if region.part in (Part.CODE, Part.COMMENT):
            _check_plain(text, region)
    plain = _blank_comments(text, regions)
    # Blanking a comment must not make a new one (`-/**/-` would become `-  -`, but
    # `--/**/ x` would become `--    x`): read again and insist on no comment at all.
    plain_regions = _regions(plain)
    if any(r.part is Part.COMMENT for r in plain_regions):
        raise Refused(
            "a comment placed between symbols is not allowed: without it the symbols would "
            "start another comment; remove the comment"
        )
    tokens = _tokens(plain, plain_regions)
    _check_variable_names(plain, tokens)
    return Lexed(text=plain, regions=plain_regions, tokens=tokens)


def where(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def _check_characters_anywhere(text: str) -> None:
    if "\x00" in text:
        raise Refused(
            f"a NUL character (at {where(text, text.index(chr(0)))}) is not allowed: "
            "the database and this check may end the statement at different places; remove it"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Refused(
            f"the text at {where(text, error.start)} is not valid Unicode, which is not "
            "allowed; retype the statement"
        ) from None


def _regions(text: str) -> list[Region]:
    regions: list[Region] = []
    code_start = 0
    i, n = 0, len(text)

    def close_code(at: int) -> None:
        if at > code_start:
            regions.append(Region(Part.CODE, code_start, at))

    while i < n:
        c = text[i]
        if c in "'\"":
            end = _string_end(text, i)
            _check_prefixed_string(text, i, end)
            part = Part.STRING
        elif c == "`":
            end = _name_end(text, i)
            part = Part.NAME
        elif c == "#" or _is_dash_comment(text, i):
            newline = text.find("\n", i)
            end = n if newline < 0 else newline
            part = Part.COMMENT
        elif text.startswith("/*", i):
            end = _block_comment_end(text, i)
            part = Part.COMMENT
        else:
            i += 1
            continue
        close_code(i)
        regions.append(Region(part, i, end))
        i = code_start = end
    close_code(n)
    return regions


def _is_dash_comment(text: str, i: int) -> bool:
    # MariaDB: `--` starts a comment only when followed by whitespace, a control character or
    # the end; `--1` is minus minus one.
    if not text.startswith("--", i):
        return False
    after = text[i + 2 : i + 3]
    return after == "" or after in WHITESPACE or ord(after) < 0x20 or after == "\x7f"


def _block_comment_end(text: str, i: int) -> int:
    body = text[i + 2 : i + 4]
    if body.startswith("!") or body.upper() == "M!":
        raise Refused(
            f"an executable comment (/*! … */ or /*M! … */, at {where(text, i)}) is not "
            "allowed: the database runs what is inside it as SQL; remove it, or write its "
            "content as plain SQL"
        )
    if body.startswith("+"):
        raise Refused(
            f"an optimizer hint (/*+ … */, at {where(text, i)}) is not allowed: the database "
            "reads it as instructions, not as a comment; remove it (the statement timeout "
            "applies anyway)"
        )
    close = text.find("*/", i + 2)
    if close < 0:
        raise Refused(
            f"the comment opened at {where(text, i)} is not closed, which is not allowed; "
            "close it with */ or remove it"
        )
    return close + 2


def _string_end(text: str, i: int) -> int:
    quote, j, n = text[i], i + 1, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
        elif c == quote:
            if text.startswith(quote, j + 1):
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise Refused(
        f"the string opened at {where(text, i)} is not closed, which is not allowed; close "
        f"it with {quote} (a \\{quote} inside a string does not close it: write {quote}{quote})"
    )


def _name_end(text: str, i: int) -> int:
    j, n = i + 1, len(text)
    while j < n:
        if text[j] == "`":
            if text.startswith("`", j + 1):
                j += 2
                continue
            return j + 1
        j += 1
    raise Refused(
        f"the `name` opened at {where(text, i)} is not closed, which is not allowed; "
        "close it with `"
    )


def _check_prefixed_string(text: str, start: int, end: int) -> None:
    """X'…' and B'…' are hex and bit literals to MariaDB, read without escapes."""
    prefix_start = start
    while prefix_start > 0 and _WORD_CHAR.fullmatch(text[prefix_start - 1]):
        prefix_start -= 1
    prefix = text[prefix_start:start].upper()
    if text[start] != "'" or prefix not in ("X", "B"):
        return
    digits = _HEX_DIGITS if prefix == "X" else _BIT_DIGITS
    if not digits.fullmatch(text[start + 1 : end - 1]):
        kind = "hex digits" if prefix == "X" else "0 and 1"
        raise Refused(
            f"{prefix}'…' (at {where(text, prefix_start)}) with anything but {kind} inside "
            f"is not allowed: the database reads it differently from a string; write "
            f"{prefix}'…' with {kind} only, or put a space between {prefix} and the string"
        )


def _check_plain(text: str, region: Region) -> None:
    for index in range(region.start, region.end):
        c = text[index]
        if c in _PRINTABLE or c in WHITESPACE:
            continue
        name = unicodedata.name(c, "a control character")
        place = "in a comment" if region.part is Part.COMMENT else "outside quotes"
        raise Refused(
            f"the character U+{ord(c):04X} ({name}) at {where(text, index)} is not allowed "
            f"{place}: the database may read it differently from this check; use plain ASCII "
            "there, or put it inside '…' (text) or `…` (a name)"
        )


def _blank_comments(text: str, regions: list[Region]) -> str:
    out = []
    for region in regions:
        chunk = text[region.start : region.end]
        if region.part is Part.COMMENT:
            out.append("".join("\n" if c == "\n" else " " for c in chunk))
        elif region.part is Part.CODE:
            out.append("".join(c if c not in WHITESPACE or c == "\n" else " " for c in chunk))
        else:
            out.append(chunk)
    return "".join(out)


def _tokens(text: str, regions: list[Region]) -> list[Token]:
    tokens: list[Token] = []
    for region in regions:
        chunk = text[region.start : region.end]
        if region.part is Part.STRING:
            tokens.append(Token(Kind.STRING, chunk, region.start, region.end))
        elif region.part is Part.NAME:
            tokens.append(
                Token(Kind.NAME, chunk[1:-1].replace("``", "`"), region.start, region.end)
            )
        else:
            tokens.extend(_code_tokens(text, region))
    return tokens


def _code_tokens(text: str, region: Region) -> list[Token]:
    tokens: list[Token] = []
    i = region.start
    while i < region.end:
        c = text[i]
        if c in WHITESPACE:
            i += 1
            continue
        number = _NUMBER.match(text, i, region.end)
        if number and (c.isdigit() or c == "."):
            end = number.end()
            if end < region.end and _WORD_CHAR.fullmatch(text[end]):
                glued = _WORD_CHAR_RUN.match(text, i, region.end)
                assert glued is not None
                raise Refused(
                    f"`{glued.group()}` (at {where(text, i)}) is not allowed: MariaDB reads a "
                    "number followed by letters as a number and then a word; put a space "
                    "after the number, or quote a name that starts with a digit with `…`"
                )
            tokens.append(Token(Kind.NUMBER, number.group(), i, end))
            i = end
            continue
        word = _WORD.match(text, i, region.end)
        if word:
            tokens.append(Token(Kind.WORD, word.group(), i, word.end()))
            i = word.end()
            continue
        if c == "\\":
            raise Refused(
                f"a backslash outside a string (at {where(text, i)}) is not allowed: the "
                "database reads \\N there as NULL; write NULL"
            )
        tokens.append(Token(Kind.SYMBOL, c, i, i + 1))
        i += 1
    return tokens


def _check_variable_names(text: str, tokens: list[Token]) -> None:
    """`@'…'` names a variable with a string's quotes; refused rather than relied upon.

    A new session has no user variables to read, so nothing is lost, and the guard does not
    depend on how each server version reads those quotes.
    """
    for at, quoted in itertools.pairwise(tokens):
        if (
            at.text == "@"
            and quoted.kind in (Kind.STRING, Kind.NAME)
            and quoted.start == at.start + 1
        ):
            raise Refused(
                f"a quoted variable name (@'…', @\"…\" or @`…`, at {where(text, at.start)}) is "
                "not allowed: a new session has no user variables to read, and the guard does "
                "not rely on how each server reads those quotes; use @@name for a system "
                "variable"
            )
