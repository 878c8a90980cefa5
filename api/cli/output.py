"""Console helpers: one Rich console for stdout, JSON printing, transfer progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextmanager
def transfer_progress(verb: str) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields a factory: (filename, total bytes) -> callback(bytes just transferred)."""
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
