"""What `sql` keeps of a result as its rows stream in: a row count, a byte budget, cut cells.

Rows are taken one at a time from an unbuffered cursor; each cell longer than the cell limit
is cut at once, so a row costs at most its cut size from then on, and the fetch stops before
the row that would go over the byte budget. A size is what the cell takes as UTF-8 text, plus
one byte for the separator after it, which is also about what it takes in the CSV file.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from bot.ports.database import CutValue, ResultCut

NULL_SIZE = len("NULL")


@dataclass
class ResultBudget:
    row_limit: int
    max_result_bytes: int
    max_cell_bytes: int
    rows: list[tuple[object, ...]] = field(default_factory=list)
    size: int = 0
    cut: ResultCut | None = None
    cut_cells: int = 0

    def take(self, row: tuple[object, ...]) -> bool:
        """Keep `row` if it fits; False, with `cut` set, once nothing more is to be read."""
        if len(self.rows) >= self.row_limit:
            self.cut = ResultCut.ROW_LIMIT
            return False
        cells = [cut_cell(value, self.max_cell_bytes) for value in row]
        size = sum(cell_size for _, cell_size in cells) + len(cells)
        if self.size + size > self.max_result_bytes:
            self.cut = ResultCut.MAX_RESULT_BYTES
            return False
        self.size += size
        self.rows.append(tuple(value for value, _ in cells))
        self.cut_cells += sum(isinstance(value, CutValue) for value, _ in cells)
        return True


def cut_cell(value: object, max_bytes: int) -> tuple[object, int]:
    """The value as kept (a CutValue if it was longer than `max_bytes`) and its size."""
    if value is None:
        return None, NULL_SIZE
    if isinstance(value, bytes | bytearray):
        if len(value) <= max_bytes:
            return value, len(value)
        return CutValue(_text_boundary(bytes(value[:max_bytes]))), max_bytes
    if isinstance(value, str):
        # At most max_bytes + 1 characters are encoded, however long the value is.
        encoded = value[: max_bytes + 1].encode("utf-8", "replace")
        if len(value) <= max_bytes and len(encoded) <= max_bytes:
            return value, len(encoded)
        return CutValue(encoded[:max_bytes].decode("utf-8", "ignore")), max_bytes
    # Numbers, dates and times: short whatever the query does.
    return value, len(str(value))


def _text_boundary(head: bytes) -> bytes:
    """Text cut in the middle of a character would no longer read as text; drop that part."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return head  # binary data: kept as it is
    return text.encode("utf-8")
