"""Console helpers: one Rich console for stdout, JSON printing, transfer progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

# What the consoles print is the catalog's text (names, descriptions, tags, errors), never Rich markup
# or emoji codes: a description `v[/x]` stopped `adapters list` with a MarkupError, `[red]v[/red]` lost
# its brackets and `:rocket:` became an emoji.
console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)


def _plain(value: Any) -> Any:
    # Duck-typed pydantic check: importing pydantic here would cost every command its import time.
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def print_json(value: Any) -> None:
    data = [_plain(v) for v in value] if isinstance(value, list) else _plain(value)
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def id_table(*ids: str, columns: tuple[str, ...] = ()) -> Table:
    """A table whose `ids` columns (names, refs, digests) never wrap; the others wrap at words."""
    from rich.table import Table

    table = Table()
    for title in ids:
        table.add_column(title, no_wrap=True)
    for title in columns:
        table.add_column(title, overflow="fold")
    return table


def _min_width(table: Table) -> int:
    """Narrowest width that keeps every no-wrap cell whole and every other cell's longest word."""
    from rich.measure import Measurement

    opts = console.options.update_width(100_000)
    total = len(table.columns) + 1 if table.box else 0  # vertical rules
    for column in table.columns:
        sizes = [Measurement.get(console, opts, cell) for cell in (column.header, *column.cells)]
        total += 2 + max(m.maximum if column.no_wrap else m.minimum for m in sizes)  # + padding
    return total


def print_table(table: Table) -> None:
    """Print `table` when its unbreakable cells (ids, names, digest prefixes) fit the width, other
    cells wrapping at words; otherwise as a list, one record per row (its first cell alone on a line,
    then `header: value` pairs wrapped at spaces), so no id is ever cut or wrapped, in a narrow
    terminal or an 80-column pipe."""
    if _min_width(table) <= console.width:
        console.print(table)
        return
    for line in list_layout(table, console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def list_layout(table: Table, width: int) -> list[str]:
    """The rows of `table` as records. Tokens are never split: a line breaks only between words."""
    import textwrap

    columns = [(str(c.header), [str(cell) for cell in c.cells]) for c in table.columns]
    if not columns:
        return []
    lines: list[str] = []
    for row in range(len(columns[0][1])):
        first_header, first_cells = columns[0]
        first = first_cells[row]
        lines.append(f"{first_header} {first}" if first.isdigit() else first)
        fields = [f"{header}: {cells[row] or '-'}" for header, cells in columns[1:]]
        text = "  ".join(fields)
        lines += textwrap.wrap(
            text,
            width=max(width, 20),
            initial_indent="  ",
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        ) or ["  "]
    return lines


@contextmanager
def transfer_progress(verb: str) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields a factory: (filename, total bytes) -> callback(bytes just transferred)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn(f"{verb} {{task.description}}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as progress:

        def factory(filename: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(filename, total=total)
            return lambda n: progress.advance(task, n)

        yield factory
