"""The session in README.md's "Trying it" is replayed through a real `kajitori demo`, so the
README shows what the product prints today: a change to any reply fails here until the README
is updated with it.

How the README's lines are compared with the output, line by line:
- a line that is exactly `...` stands for any number of output lines (none included);
- `...` inside a line stands for any text in that line (the product itself prints `…`, U+2026,
  which is matched literally like everything else);
- before comparing, both sides go through NORMALISED below, which hides only what changes
  from one run to the next: local ports, ECS deployment ids, clock times and durations.
Everything else must be equal.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from tests.cli.test_cli import ROOT, kajitori

README = ROOT / "README.md"
OPENING = "```text\n$ make demo\n"
PROMPT = "kajitori> "
ELIDED = "..."

# What legitimately differs between two runs of the same session, and what it becomes.
NORMALISED: tuple[tuple[re.Pattern[str], str], ...] = (
    # the sandbox, MariaDB and the bastion listen on free ports picked at start
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    # ECS names each deployment with a random number
    (re.compile(r"ecs-svc/\d+"), "ecs-svc/<id>"),
    # dates and times: "2026-12-01 17:04:35 UTC", "2026-12-01 17:04 UTC", "until 21:04 UTC"
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})? UTC"), "<date> UTC"),
    (re.compile(r"\b\d{2}:\d{2} UTC"), "<time> UTC"),
    # durations measured by the clock: "6s", "1m5s", "0s elapsed", and a lease's "(in 3h59m)"
    (re.compile(r"\b(?:\d+m)?\d+s\b"), "<duration>"),
    (re.compile(r"\(in \d+h(?:\d+m)?\)"), "(in <duration>)"),
)


def normalised(line: str) -> str:
    for pattern, replacement in NORMALISED:
        line = pattern.sub(replacement, line)
    return line


def readme_transcript(text: str) -> tuple[list[str], int]:
    """The lines of the fenced `$ make demo` session (without the `$` line), and the README
    line number of its first line."""
    assert OPENING in text, f"README.md has no fenced block opening with {OPENING!r}"
    before, rest = text.split(OPENING, 1)
    block = rest.split("\n```", 1)[0]
    return block.splitlines(), before.count("\n") + 3


def first_mismatch(expected: list[str], actual: list[str]) -> tuple[int, int] | None:
    """None when `actual` matches `expected`; else the positions in both where matching got
    furthest, to show the line that differs."""
    patterns = [
        None
        if line == ELIDED
        else re.compile(".*".join(re.escape(part) for part in normalised(line).split(ELIDED)))
        for line in expected
    ]
    output = [normalised(line) for line in actual]
    furthest = (0, 0)

    @functools.cache
    def matches(i: int, j: int) -> bool:
        nonlocal furthest
        furthest = max(furthest, (i, j))
        if i == len(patterns):
            return j == len(output)
        pattern = patterns[i]
        if pattern is None:
            return any(matches(i + 1, k) for k in range(j, len(output) + 1))
        return (
            j < len(output) and pattern.fullmatch(output[j]) is not None and matches(i + 1, j + 1)
        )

    return None if matches(0, 0) else furthest


def test_readme_demo_session_is_what_the_demo_prints_today(tmp_path: Path) -> None:
    expected, first_line = readme_transcript(README.read_text())
    commands = [line.removeprefix(PROMPT) for line in expected if line.startswith(PROMPT)]
    assert len(commands) >= 5, f"the README's session has too few commands: {commands}"
    # `make demo` is `kajitori demo`; the shell echoes each command it reads from a pipe.
    assert "\t$(BIN)/kajitori demo\n" in (ROOT / "Makefile").read_text()
    done = kajitori("demo", stdin="".join(f"{c}\n" for c in commands), cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr
    actual = done.stdout.splitlines()
    mismatch = first_mismatch(expected, actual)
    if mismatch is not None:
        i, j = mismatch
        readme_line = expected[i] if i < len(expected) else "(end of the session)"
        output_line = actual[j] if j < len(actual) else "(end of the output)"
        pytest.fail(
            f"README.md line {first_line + i} does not match what `kajitori demo` prints:\n"
            f"  README: {readme_line}\n  output: {output_line}\n"
            "update the README's session with the output below.\n\n" + done.stdout
        )


def test_changed_words_differ_while_ports_ids_times_and_durations_do_not() -> None:
    readme = [
        "AWS sandbox at http://127.0.0.1:42603; database main: MariaDB on 127.0.0.1:55337",
        "rollout: COMPLETED (ecs-svc/9278526118413210280 at 2026-12-01 17:04:35 UTC)",
        "locked for 4h (until 21:04 UTC), until 21:04 UTC (in 3h59m)",
        "[job J1] ✅ deployed api v2 to production in 6s: api-production:2",
    ]
    rerun = [
        "AWS sandbox at http://127.0.0.1:40001; database main: MariaDB on 127.0.0.1:40002",
        "rollout: COMPLETED (ecs-svc/1 at 2027-01-02 03:04:05 UTC)",
        "locked for 4h (until 07:05 UTC), until 07:05 UTC (in 4h)",
        "[job J1] ✅ deployed api v2 to production in 1m12s: api-production:2",
    ]
    assert first_mismatch(readme, rerun) is None
    assert first_mismatch(readme, [*rerun[:3], rerun[3].replace("v2", "v3")]) == (3, 3)
    # What is not a clock value still counts: the lock's 4h comes from the config.
    assert first_mismatch(readme, [*rerun[:2], rerun[2].replace("for 4h", "for 5h"), rerun[3]])


def test_elided_lines_stand_for_any_lines_and_nothing_else_is_skipped() -> None:
    readme = ["kajitori> status api staging", "api in staging", "...", "account: 1", "kajitori> x"]
    assert (
        first_mismatch(
            readme, ["kajitori> status api staging", "api in staging", "account: 1", "kajitori> x"]
        )
        is None
    )
    assert (
        first_mismatch(
            readme,
            [
                "kajitori> status api staging",
                "api in staging",
                "lock: none",
                "jobs: none",
                "account: 1",
                "kajitori> x",
            ],
        )
        is None
    )
    # A line added where nothing is elided, or one missing, is a difference.
    assert first_mismatch(
        readme,
        ["kajitori> status api staging", "new line", "api in staging", "account: 1", "kajitori> x"],
    ) == (1, 1)
    assert first_mismatch(
        readme, ["kajitori> status api staging", "api in staging", "account: 1"]
    ) == (4, 3)
    # `...` within a line is any text; the product's own `…` is not a wildcard.
    assert first_mismatch(["version: v1 (sha256:...)"], ["version: v1 (sha256:4dd9ba6a)"]) is None
    assert first_mismatch(["registered (sha256:…)"], ["registered (sha256:4dd9ba6a)"]) == (0, 0)
