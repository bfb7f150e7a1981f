"""Plain-text tables that fit the terminal: headers wrap at words, text cells wrap when space is short, and columns
that still do not fit are left out, with a line saying which."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from typing import Any, Sequence

GAP = 2  # spaces between columns


def terminal_width() -> int | None:
    """The width to fit: $COLUMNS when set, else the terminal's when stdout is one; None (no limit) otherwise, so
    that output written to a file or a pipe keeps whole lines."""
    if os.environ.get("COLUMNS", "").isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _widths(columns: list[str], cells: list[list[str]], width: int, wrap_cells: bool) -> list[int] | None:
    """Column widths that fit `width` (None if none do): each column as wide as its widest cell and its header's
    longest word, with `wrap_cells` text columns narrowed (widest first) down to their longest word; spare room goes
    to the headers that wrap onto the most lines."""
    natural = [max([_longest_word(name), *(len(c) for c in column)]) for name, column in zip(columns, cells)]
    least = [max([_longest_word(name), *(_longest_word(c) for c in column)]) for name, column in zip(columns, cells)]
    widths = list(natural)
    budget = width - GAP * (len(columns) - 1)
    while sum(widths) > budget:
        shrinkable = [i for i, (w, low) in enumerate(zip(widths, least)) if w > low] if wrap_cells else []
        if not shrinkable:
            return None
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1
    for _ in range(budget - sum(widths)):
        lines = [len(_wrap(name, w)) for name, w in zip(columns, widths)]
        if max(lines) == 1:
            break
        widths[lines.index(max(lines))] += 1
    return widths


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None,
                 drop_first: Sequence[str] = ()) -> str:
    """`rows` under their `columns`, numbers right-aligned and text left-aligned, no line wider than `width` (by
    default `terminal_width()`; None: no limit). Headers wrap at words. When that is not enough, the columns whose names start with an
    entry of `drop_first` are left out (in that order); then text cells wrap at words; then columns are left out
    from the right. The first column always stays, and a last line names the columns left out."""
    width = width or terminal_width() or 10**6
    columns = list(columns)
    text = [[str(cell) for cell in row] for row in rows]
    expendable = list(dict.fromkeys(i for prefix in drop_first for i, name in enumerate(columns)
                                    if name.startswith(prefix)))
    kept = list(range(len(columns)))
    layout = None
    for wrap_cells, order in ((False, expendable), (True, list(reversed(range(1, len(columns)))))):
        while True:
            layout = _widths([columns[i] for i in kept], [[row[i] for row in text] for i in kept], width, wrap_cells)
            dropped = next((i for i in order if i in kept), None)
            if layout is not None or dropped is None:
                break
            kept.remove(dropped)
        if layout is not None:
            break
    names = [columns[i] for i in kept]
    cells = [[row[i] for row in text] for i in kept]
    widths = layout or [max(len(c) for c in [names[0], *cells[0]])]
    numeric = [all(_is_number(c) for c in column) for column in cells]
    lines = _block([_wrap(name, w) for name, w in zip(names, widths)], widths, numeric, header=True)
    for r in range(len(text)):
        lines += _block([_wrap(column[r], w) for column, w in zip(cells, widths)], widths, numeric)
    left_out = [columns[i] for i in range(len(columns)) if i not in kept]
    if left_out:
        lines += _wrap(f"(left out at {width} columns: {', '.join(left_out)})", width)
    return "\n".join(lines)


def _block(parts: list[list[str]], widths: list[int], numeric: list[bool], header: bool = False) -> list[str]:
    """One row (or the header) as lines: multi-line cells stacked, headers bottom-aligned."""
    height = max(len(p) for p in parts)
    padded = [([""] * (height - len(p)) + p) if header else (p + [""] * (height - len(p))) for p in parts]
    return [(" " * GAP).join(cell.rjust(w) if num else cell.ljust(w) for cell, w, num in
                             zip((p[k] for p in padded), widths, numeric)).rstrip() for k in range(height)]
