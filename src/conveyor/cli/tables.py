"""List tables that fit the terminal: ids whole, low-value columns dropped, long text folded.

Rich shrinks every column of a table that is too wide, ids included (an id cut
to ``0d5d6a4e-8a0a-4a4e-9a7e-3f1…`` cannot be copied). :func:`fitted` decides
first which columns fit: key columns (ids) keep their full width, free-text
columns fold onto several lines, and while even their minimum widths do not fit,
the column with the highest ``drop`` rank goes. A caption names the columns left
out (``--json`` has them all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.table import Column, Table
from rich.text import Text

#: The narrowest a folding column gets before a column is dropped instead.
FOLD_MIN = 12


@dataclass(frozen=True)
class Col:
    """One column of a list table.

    ``drop`` 0 keeps the column whatever the width; above 0, the highest rank goes
    first. ``fold`` wraps long free text (an error message) instead of widening.
    """

    header: str
    drop: int = 0
    fold: bool = False
    justify: str = "left"


def _width(cells: Sequence[str], header: str) -> int:
    return max([cell_len(header), *(cell_len(c) for c in cells)])


def fitted(columns: Sequence[Col], rows: Sequence[Sequence[str]], width: int) -> Table:
    """A table of ``rows`` (plain text, never markup) that fits ``width`` terminal cells."""
    shown = list(range(len(columns)))

    def minimum(index: int) -> int:
        natural = _width([row[index] for row in rows], columns[index].header)
        return min(natural, FOLD_MIN) if columns[index].fold else natural

    def needed() -> int:
        # Each column has one cell of padding either side and one separator between.
        return sum(minimum(i) for i in shown) + 3 * len(shown) - 1

    while needed() > width:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    table = Table(
        *(
            Column(
                columns[i].header,
                no_wrap=not columns[i].fold,
                overflow="fold" if columns[i].fold else "ignore",
                justify=columns[i].justify,  # type: ignore[arg-type]
            )
            for i in shown
        ),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        caption=f"not shown at this width: {', '.join(hidden)} (--json has every field)"
        if hidden and rows
        else None,
        caption_justify="left",
    )
    for row in rows:
        table.add_row(*(Text(row[i]) for i in shown))
    return table
