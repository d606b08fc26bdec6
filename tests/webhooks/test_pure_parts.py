"""The pure parts of the webhooks: GitHub's signature test vector, Typetalk's mention and
its 4,000-character limit, and the test payloads themselves."""

from __future__ import annotations

import json

from pydantic import SecretStr

from adapters.chat.typetalk import MAX_CHARS, split_message, strip_mention
from adapters.triggers.common import signature_matches
from tests.webhooks.conftest import (
    GITHUB_SECRET,
    VECTOR_BODY,
    VECTOR_SIGNATURE,
    fixture_bytes,
    release_payload,
)


def test_signature_check_passes_githubs_documented_test_vector() -> None:
    secret = SecretStr(GITHUB_SECRET)
    assert signature_matches(secret, VECTOR_BODY, VECTOR_SIGNATURE)
    assert not signature_matches(secret, VECTOR_BODY + b" ", VECTOR_SIGNATURE)
    assert not signature_matches(secret, VECTOR_BODY, VECTOR_SIGNATURE[:-1] + "f")
    assert not signature_matches(SecretStr("another secret"), VECTOR_BODY, VECTOR_SIGNATURE)
    assert not signature_matches(secret, VECTOR_BODY, None)
    assert not signature_matches(None, VECTOR_BODY, VECTOR_SIGNATURE)


def test_release_payload_changes_only_the_tag_and_the_release_id() -> None:
    original = json.loads(fixture_bytes("release-published.payload.json"))
    changed = json.loads(release_payload("v2"))
    other = json.loads(release_payload("v2"))
    assert changed["release"]["tag_name"] == "v2"
    assert changed["release"]["html_url"].endswith("/releases/tag/v2")
    assert len({original["release"]["id"], changed["release"]["id"], other["release"]["id"]}) == 3
    changed["release"]["tag_name"] = original["release"]["tag_name"]
    changed["release"]["html_url"] = original["release"]["html_url"]
    changed["release"]["id"] = original["release"]["id"]
    assert changed == original


def test_mention_is_stripped_wherever_it_stands() -> None:
    assert strip_mention("@kajitori+ status api staging", "kajitori") == "status api staging"
    assert strip_mention("  @kajitori+\nstatus api staging ", "kajitori") == "status api staging"
    assert strip_mention("status api staging @kajitori+", "kajitori") == "status api staging"
    assert strip_mention("@other+ hi", "kajitori") == "@other+ hi"


def test_long_text_is_split_in_numbered_parts_within_the_limit() -> None:
    table = "\n".join(f"row {i:04d} " + "x" * 60 for i in range(200))
    text = f"head line\n```\n{table}\n```\ntail line"

    parts = split_message(text)

    assert len(parts) > 1
    assert all(len(part) <= MAX_CHARS for part in parts)
    assert parts[0].startswith("head line")
    assert parts[-1].endswith(f"({len(parts)}/{len(parts)})")
    # A code block cut in two is closed and reopened, so every part renders on its own.
    assert all(part.count("```") % 2 == 0 for part in parts)
    joined = "".join(parts)
    assert all(f"row {i:04d}" in joined for i in range(200))


def test_text_past_the_last_part_is_shortened_with_a_note() -> None:
    text = "\n".join("y" * 90 for _ in range(1000))  # about 91,000 characters

    parts = split_message(text, max_parts=3)

    assert len(parts) == 3
    assert all(len(part) <= MAX_CHARS for part in parts)
    assert "… shortened:" in parts[-1]
    assert "more characters are not shown" in parts[-1]
    assert split_message("short") == ["short"]


def test_one_line_longer_than_the_limit_is_cut() -> None:
    parts = split_message("z" * 9000)

    assert len(parts) == 3
    assert all(len(part) <= MAX_CHARS for part in parts)
    assert sum(part.count("z") for part in parts) == 9000
