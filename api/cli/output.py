"""Console helpers: one Rich console for stdout, JSON printing, transfer progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _plain(value: Any) -> Any:
    # Duck-typed pydantic check: importing pydantic here would cost every command its import time.
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def print_json(value: Any) -> None:
    data = [_plain(v) for v in value] if isinstance(value, list) else _plain(value)
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


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
