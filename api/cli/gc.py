"""`pemreg gc [--dry-run]`: remove store objects no catalog row references (registry.service.admin.gc)
and what dead processes left behind (registry.service.admin.leftovers)."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.service.admin import gc as gc_service
from registry.service.admin.leftovers import remove_leftovers

from .deps import registry
from .output import console, id_table, print_json, print_table


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the orphans, remove nothing")] = False,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace", min=0, help="seconds; objects younger are kept (default PEMREG_GC_GRACE_SECONDS)"
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False,
) -> None:
    """Remove uploads no catalog row references (e.g. of a composition killed before its commit), and
    the scratch folders, run work folders and incomplete store uploads of processes that died, when
    older than the grace period (so work still in flight is never touched)."""
    reg = registry()
    found = gc_service.collect(reg, dry_run=dry_run, grace_seconds=grace)
    found += remove_leftovers(reg, dry_run=dry_run, grace_seconds=grace)
    if json_out:
        print_json([o.to_dict() for o in found])
        return
    table = id_table("kind", "folder", columns=("objects", "bytes", "modified"))
    for o in found:
        table.add_row(o.kind, o.folder, str(len(o.keys)), str(o.size), f"{o.modified:%Y-%m-%d %H:%M:%S}")
    if found:
        console.print("found" if dry_run else "removed", markup=False)
        print_table(table)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(found)} folder(s), {sum(o.size for o in found)} bytes", markup=False)


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)
