"""`pemreg base-models add|list|show|merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.errors import InvalidInput

from .backend import backend
from .output import console, id_table, print_json, print_table

app = typer.Typer(help="Base models adapters belong to.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="e.g. tiny-gpt2 or meta-llama/Llama-3.1-8B")],
    source: Annotated[str, typer.Option("--source", help="local folder, s3:// folder, or hub id")],
    revision: Annotated[
        str, typer.Option("--revision", help="revision label (git revision for hub ids)")
    ] = "main",
    sha256: Annotated[str | None, typer.Option("--sha256", help="digest of the weights, if known")] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--folder",
            help="a local copy of the base (default: --source when it is a folder here): its config.json "
            "and weights digest are recorded, so adapters whose config names that folder are recognised",
        ),
    ] = None,
) -> None:
    """Register a base model. Its identity (config fingerprint, weights digest, architecture) is read
    from a local folder: --source when it is one, else --folder."""
    from registry.base_evidence import local_folder

    if folder is not None and local_folder(str(folder)) is None:
        raise InvalidInput(f"folder: {folder} is not a folder", field="folder")
    local_copy = local_folder(str(folder)) if folder is not None else local_folder(source)
    view, created = backend().add_base_model(
        name, source=source, revision=revision, sha256=sha256, folder=local_copy
    )
    state = "registered" if created else "already registered:"
    console.print(
        f"{state} {view.name}@{view.revision} ({view.architecture or 'architecture unknown'})", markup=False
    )


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List registered base models."""
    rows = backend().list_base_models()
    if json_out:
        print_json(rows)
        return
    table = id_table("name", "revision", columns=("architecture", "source"))
    for r in rows:
        table.add_row(r.name, r.revision, r.architecture or "", r.source)
    print_table(table)


@app.command("show")
def show(
    label: Annotated[str, typer.Argument(help="NAME or NAME@REVISION")],
    json_out: JsonOpt = False,
) -> None:
    """One base model: source, identity (weights digest, config fingerprint), how it was registered,
    and the adapters that belong to it."""
    detail = backend().show_base_model(label)
    if json_out:
        print_json(detail)
        return
    how = "registered on the way by an adapter's config" if detail.auto_registered else "base-models add"
    lines = [
        f"{detail.name}@{detail.revision}  ({detail.architecture or 'architecture unknown'})",
        f"  source: {detail.source}",
        f"  weights sha256: {detail.sha256 or '-'}",
        f"  config fingerprint: {detail.config_sha256 or '-'}",
        f"  registered by {detail.created_by} on {detail.created_at:%Y-%m-%d %H:%M} ({how})",
        f"  adapters: {detail.adapter_count}",
    ]
    lines += [f"    {name}" for name in detail.adapters]
    if detail.adapter_count > len(detail.adapters):
        lines.append(
            f"    ... and {detail.adapter_count - len(detail.adapters)} more (adapters list --base-model)"
        )
    if detail.auto_registered and not detail.config_sha256:
        lines.append(
            "  note: nothing identifies this base but its name; if it is another base's folder, "
            "`pemreg base-models merge` moves its adapters there"
        )
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


@app.command("merge")
def merge(
    label: Annotated[str, typer.Argument(help="NAME[@REVISION] of the base to remove")],
    into: Annotated[str, typer.Option("--into", help="NAME[@REVISION] its adapters move to")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Repair a catalog holding one base under two names (admin in remote mode): every adapter of
    LABEL moves to --into and LABEL is removed; refused when they are recorded as different models."""
    if not yes and not typer.confirm(
        f"move every adapter of {label} to {into} and remove {label}?", err=True
    ):
        raise typer.Exit(1)
    done = backend().merge_base_models(label, into)
    console.print(
        f"merged {done.merged} into {done.into}: {len(done.adapters)} adapter(s) moved"
        + (f" ({', '.join(done.adapters)})" if done.adapters else ""),
        markup=False,
        soft_wrap=True,
    )
