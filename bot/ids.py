"""How requests and jobs are named to people: `R3` is a request, `J4` a job.

Requests and jobs count separately, so a bare number could be either; the letter says
which. Commands accept the bare number too (`approve 3`, `cancel 4`), and a number with
the other letter is refused with a word on what it is.
"""

from __future__ import annotations

import re

from bot.errors import UsageError

JOB, REQUEST = "J", "R"
_NAMES = {JOB: "job", REQUEST: "request"}
_ID = re.compile(r"#?([A-Za-z]?)(\d+)")


def job_ref(job_id: int) -> str:
    return f"{JOB}{job_id}"


def request_ref(request_id: int) -> str:
    return f"{REQUEST}{request_id}"


def parse_ref(raw: str, letter: str, *, usage: str | None = None) -> int:
    """`J4`, `j4`, `#4` or `4` as a job id (letter `J`); UsageError for anything else."""
    what = _NAMES[letter]
    match = _ID.fullmatch(raw.strip())
    if match is None:
        raise UsageError(
            f"bad {what} id {raw!r}: use the id from the {what} message, like {letter}12",
            usage=usage,
        )
    given = match.group(1).upper()
    if given and given != letter:
        other = _NAMES.get(given)
        if other is None:
            raise UsageError(f"bad {what} id {raw!r}: {what} ids look like {letter}12", usage=usage)
        raise UsageError(
            f"{raw} is a {other} id; this command takes a {what} id, like {letter}{match.group(2)}",
            usage=usage,
        )
    return int(match.group(2))
