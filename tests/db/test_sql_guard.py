"""The read-only check in front of `sql`: what passes, what is refused, and why."""

from __future__ import annotations

import pytest

from bot.errors import Refused
from commands.database.sql_guard import check_read_only, normalize_chat_sql


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("SELECT * FROM orders", "SELECT"),
        ("select id from orders where note = 'a;b' ;", "SELECT"),
        (
            "WITH big AS (SELECT * FROM orders WHERE amount > 100) SELECT COUNT(*) FROM big",
            "SELECT",
        ),
        ("(SELECT id FROM orders) UNION ALL (SELECT id FROM events)", "SELECT"),
        ("SELECT 'INTO OUTFILE' AS words, `outfile` FROM t", "SELECT"),
        ("SELECT id FROM orders -- newest first", "SELECT"),
        ("SELECT 1 /* ; DROP TABLE orders */", "SELECT"),
        ("SELECT 1 # a comment", "SELECT"),
        ("SHOW TABLES", "SHOW"),
        ("SHOW CREATE TABLE orders", "SHOW"),
        ("EXPLAIN SELECT * FROM orders WHERE id = 1", "EXPLAIN"),
        ("DESCRIBE orders", "DESCRIBE"),
        ("TABLE orders", "SELECT"),
    ],
)
def test_one_read_statement_passes(statement: str, kind: str) -> None:
    checked = check_read_only(statement)
    assert checked.kind == kind
    assert not checked.text.endswith(";")


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        ("INSERT INTO orders VALUES (1)", "this is INSERT"),
        ("UPDATE orders SET amount = 0", "this is UPDATE"),
        ("DELETE FROM orders", "this is DELETE"),
        ("REPLACE INTO orders VALUES (1)", "REPLACE"),
        ("CREATE TABLE t (id INT)", "this is CREATE"),
        ("DROP TABLE orders", "this is DROP"),
        ("ALTER TABLE orders ADD COLUMN x INT", "this is ALTER"),
        ("TRUNCATE TABLE orders", "TRUNCATE"),
        ("GRANT ALL ON *.* TO 'me'", "GRANT"),
        ("SET @x = 1", "this is SET"),
        ("CALL cleanup()", "this is CALL"),
        ("SELECT 1; DROP TABLE orders", "one statement at a time"),
        ("SELECT 1;; SELECT 2", "one statement at a time"),
        ("SELECT 1 --1; DROP TABLE orders", "one statement at a time"),
        ("SELECT * FROM orders INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("SELECT * INTO DUMPFILE '/tmp/x' FROM orders", "INTO DUMPFILE"),
        ("SELECT id INTO @id FROM orders LIMIT 1", "SELECT ... INTO"),
        ("SELECT * FROM orders FOR UPDATE", "locking reads"),
        ("SELECT * FROM orders LOCK IN SHARE MODE", "locking reads"),
        ("SELECT * FROM orders FOR SHARE", "locking reads"),
        ("SELECT * FROM (SELECT * FROM orders FOR UPDATE) o", "locking reads"),
        ("SELECT 1 /*!, (SELECT 1 FROM orders FOR UPDATE) */", "an executable comment"),
        ("SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */", "an executable comment"),
        ("SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM orders", "an optimizer hint"),
        ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone", "DELETE"),
        ("EXPLAIN DELETE FROM orders", "EXPLAIN is allowed for reads only"),
        ("EXPLAIN ANALYZE SELECT * FROM orders", "EXPLAIN ANALYZE is not allowed: it runs"),
        ("SELECT GET_LOCK('deploy', 10)", "GET_LOCK() is not allowed: it takes a named lock"),
        ("SELECT LOAD_FILE('/etc/passwd')", "LOAD_FILE()"),
        ("DO SLEEP(1)", "this is DO"),
        ("SELECT 'unclosed", "is not closed"),
        ("", "no statement"),
        (" ; ", "no statement"),
    ],
)
def test_anything_else_is_refused_with_the_reason(statement: str, says: str) -> None:
    with pytest.raises(Refused) as refused:
        check_read_only(statement)
    assert says in str(refused.value)


def test_a_very_long_statement_is_refused() -> None:
    with pytest.raises(Refused, match="longer than"):
        check_read_only("SELECT " + ", ".join(["id"] * 10_000) + " FROM orders")


def test_typographic_quotes_from_chat_become_straight() -> None:
    text = normalize_chat_sql("SELECT * FROM orders WHERE customer = \u2018customer-1\u2019")
    assert text == "SELECT * FROM orders WHERE customer = 'customer-1'"
    assert check_read_only(text).kind == "SELECT"


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        # MariaDB reads `--` + U+00A0 as two minus signs and a name: GET_LOCK would run.
        ("SELECT 1 --\u00a0, GET_LOCK('x', 0)\nFROM (SELECT 1 AS `\u00a0`) t", "U+00A0"),
        ("SELECT 1\u3000FROM orders", "U+3000 (IDEOGRAPHIC SPACE)"),
        ("SELECT 1 -- \u00e9", "in a comment"),
        # sqlglot drops the lock clause of a query in parentheses; MariaDB does not.
        ("(SELECT * FROM orders) FOR UPDATE", "locking reads"),
        ("SELECT * FROM orders WHERE id = 1e1FOR UPDATE", "`1e1FOR`"),
        ("SHOW TABLES WHERE GET_LOCK('x', 0)", "GET_LOCK()"),
        ("SELECT `GET_LOCK`('x', 0)", "GET_LOCK()"),
        ("SELECT get_lock ('x', 0)", "GET_LOCK()"),
        ("SELECT SLEEP(1)", "SLEEP() is not allowed"),
        ("SELECT @a := 1", "`:=`"),
        ("SELECT \\N", "backslash outside a string"),
        ("SELECT @'a'", "quoted variable name"),
        ("SELECT X'4''1'", "X'…'"),
        ("SELECT 1 --/**/ 1", "comment placed between symbols"),
        ("SELECT 1 /* not closed", "not closed"),
        ("SELECT 1 FROM orders INTO @x", "SELECT ... INTO is not allowed"),
        ("SELECT NEXT VALUE FOR s", "NEXT VALUE FOR"),
    ],
)
def test_what_mariadb_would_read_differently_is_refused(statement: str, says: str) -> None:
    with pytest.raises(Refused) as refused:
        check_read_only(statement)
    assert says in str(refused.value)


def test_comments_never_reach_the_database() -> None:
    checked = check_read_only("SELECT id /* a note */ FROM orders # why\n-- more\nLIMIT 1;")
    assert checked.text.split() == ["SELECT", "id", "FROM", "orders", "LIMIT", "1"]


def test_a_double_dash_without_a_space_is_two_minus_signs() -> None:
    checked = check_read_only("SELECT 1 --1")
    assert checked.text == "SELECT 1 --1"


def test_strings_and_names_keep_their_characters() -> None:
    statement = "SELECT 'caf\u00e9 -- #', `n\u00e4me` FROM orders WHERE note = 'it''s \\' /*'"
    assert check_read_only(statement).text == statement


def test_only_ascii_whitespace_is_trimmed_from_the_ends() -> None:
    assert check_read_only(" \t\r\n\x0b\x0cSELECT 1 \n").text == "SELECT 1"
    with pytest.raises(Refused, match="U\\+FEFF"):
        check_read_only("\ufeffSELECT 1")
    with pytest.raises(Refused, match="U\\+00A0"):
        check_read_only("SELECT 1 # trailing\u00a0")
