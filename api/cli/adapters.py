"""`pemreg adapters add|list|show|download|alias|tag|describe|deprecate|archive|restore|delete`.

Each command calls `backend()`: this machine's catalog, or a server in remote mode (same output)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from registry.errors import InvalidInput

from .backend import backend
from .output import console, err_console, id_table, print_json, print_table, transfer_progress

if TYPE_CHECKING:
    from registry.views import AdapterView, VersionView

app = typer.Typer(help="Register, find and fetch adapters.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def parse_tags(items: list[str] | None, field: str = "tag") -> dict[str, str]:
    """`k=v` options (the service's rule, without importing the service)."""
    tags: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{field}: {item!r} is not key=value", field=field)
        tags[key.strip()] = value.strip()
    return tags


def _version_line(v: VersionView, created: bool | None = None) -> str:
    state = "" if created is None else ("registered " if created else "already registered as ")
    rank = f" r={v.rank}" if v.rank else ""
    status = "" if v.status == "active" else f"  [{v.status}]"
    digest = f"sha256:{v.sha256[:12]}"
    return f"{state}{v.name}@{v.version}  {v.pem_type}{rank}  {digest}  {v.size_bytes} bytes{status}"


@app.command("add")
def add(
    source: Annotated[
        str, typer.Argument(help="Adapter folder (PEFT save_pretrained) or s3://bucket/prefix")
    ],
    name: Annotated[str, typer.Option("--name", help="namespace/name")],
    task: Annotated[str | None, typer.Option("--task", help="task label, e.g. math")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="key=value, repeatable")] = None,
    base_model: Annotated[
        str | None,
        typer.Option("--base-model", help="NAME or NAME@REVISION (default: the adapter config's base model)"),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="free text, searchable")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate an adapter folder, upload it, and register it as the next version."""
    tags = parse_tags(tag)
    notes: list[str] = []
    with transfer_progress("uploading") as progress:
        version, created = backend().register(
            source,
            name,
            base_model=base_model,
            task=task,
            tags=tags,
            description=description,
            progress=progress,
            notify=notes.append,
        )
    for note in notes:  # e.g. a base model registered on the way: said, not silent
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    if json_out:
        print_json({**version.model_dump(mode="json"), "created": created})
    else:
        console.print(_version_line(version, created), markup=False)


@app.command("list")
def list_(
    base_model: Annotated[str | None, typer.Option("--base-model", help="base model NAME")] = None,
    pem_type: Annotated[str | None, typer.Option("--pem-type", help="lora | ia3")] = None,
    task: Annotated[str | None, typer.Option("--task", help="exact task label")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="key=value, repeatable (all must match)")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="text in name, task or description")] = None,
    limit: Annotated[int, typer.Option("--limit", help="adapters per page")] = 50,
    page_token: Annotated[
        str | None, typer.Option("--page-token", help="continue a listing (printed after a full page)")
    ] = None,
    include_archived: Annotated[
        bool, typer.Option("--include-archived", help="also adapters whose versions are all archived")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """List adapters matching every filter given."""
    page = backend().list_adapters(
        base_model=base_model,
        pem_type=pem_type,
        task=task,
        tags=parse_tags(tag),
        query=query,
        limit=limit,
        page_token=page_token,
        include_archived=include_archived,
    )
    if json_out:
        print_json(page)
        return
    table = id_table("name", "type", "latest", columns=("task", "base model", "tags"))
    for a in page.items:
        tags = " ".join(f"{k}={v}" for k, v in a.tags.items())
        table.add_row(a.name, a.pem_type, str(a.latest_version or "-"), a.task or "", a.base_model, tags)
    print_table(table)
    if page.next_page_token:
        console.print(f"more: --page-token {page.next_page_token}", markup=False)


def _print_adapter(a: AdapterView) -> None:

    console.print(f"{a.name}  ({a.pem_type}, base {a.base_model}@{a.base_model_revision})", markup=False)
    if a.task or a.description:
        console.print(f"  task: {a.task or '-'}  description: {a.description or '-'}", markup=False)
    if a.tags:
        console.print("  tags: " + " ".join(f"{k}={v}" for k, v in a.tags.items()), markup=False)
    table = id_table(
        "version",
        "sha256",  # a 12-digit prefix, pasteable as ns/name@sha256:<prefix>
        "rank",
        "alpha",
        "dtype",
        "bytes",
        "status",
        "created by",
        "created",
        columns=("aliases",),
    )
    for v in a.versions or []:
        table.add_row(
            str(v.version),
            v.sha256[:12],
            str(v.rank or "-"),
            f"{v.alpha:g}" if v.alpha else "-",
            v.dtype,
            str(v.size_bytes),
            v.status,
            v.created_by,
            f"{v.created_at:%Y-%m-%d %H:%M}",
            ",".join(v.aliases),
        )
    print_table(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="ns/name (all versions) or ns/name@N|@alias|@sha256:prefix")],
    include_archived: Annotated[
        bool, typer.Option("--include-archived", help="also archived and deleted versions")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show an adapter with its versions, or one version in full."""
    if "@" in ref:
        version = backend().get_version(ref)
        if json_out:
            print_json(version)
        else:
            console.print(_version_line(version), markup=False)
            console.print(
                f"  base model: {version.base_model}  targets: {', '.join(version.target_modules)}",
                markup=False,
            )
            console.print(f"  artifact: {version.artifact_uri}", markup=False)
            console.print(f"  aliases: {', '.join(version.aliases) or '-'}", markup=False)
        return
    adapter = backend().show_adapter(ref, include_archived=include_archived)
    print_json(adapter) if json_out else _print_adapter(adapter)


@app.command("download")
def download(
    ref: Annotated[str, typer.Argument(help="ns/name[@N|@alias|@sha256:prefix]")],
    dest: Annotated[Path, typer.Argument(help="Folder to write the adapter files into (new or empty)")],
    force: Annotated[
        bool, typer.Option("--force", help="write into a non-empty folder, replacing files of the same name")
    ] = False,
) -> None:
    """Download a version's files (each checked against its recorded sha256)."""
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"{dest} exists and is not a folder", field="DIR")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise InvalidInput(f"{dest} is not empty; pick an empty folder or pass --force", field="DIR")
    with transfer_progress("downloading") as progress:
        version, files = backend().download(ref, dest, force=force, progress=progress)
    console.print(
        f"{version.name}@{version.version} -> {dest} ({len(files)} files, sha256 verified)", markup=False
    )


@app.command("alias")
def alias(
    ref: Annotated[str, typer.Argument(help="ns/name@N (the version to point at); ns/name with --delete")],
    name: Annotated[str, typer.Argument(help="alias, e.g. prod")],
    latest: Annotated[
        bool, typer.Option("--latest", help="allow a bare ns/name: point at its latest version")
    ] = False,
    delete: Annotated[bool, typer.Option("--delete", help="remove the alias instead")] = False,
) -> None:
    """Point an alias at a version (moves it if it exists), or remove it; recorded in the audit log."""
    if delete:
        full_name = ref.partition("@")[0]
        was = backend().delete_alias(full_name, name)
        console.print(f"{full_name}@{name} removed (pointed at version {was})", markup=False)
        return
    if "@" not in ref and not latest:
        raise InvalidInput(f"{ref} names no version; write {ref}@N (or pass --latest)", field="REF")
    version = backend().set_alias(ref, name)
    console.print(f"{version.name}@{name} -> version {version.version}", markup=False)


def _status_command(transition: str, doc: str) -> None:
    def command(
        ref: Annotated[str, typer.Argument(help="ns/name@N (or @alias, @sha256:prefix)")],
        json_out: JsonOpt = False,
    ) -> None:
        version = backend().set_status(ref, transition)
        print_json(version) if json_out else console.print(
            f"{version.name}@{version.version} is {version.status}", markup=False
        )

    command.__doc__ = doc
    app.command(transition)(command)


_status_command("deprecate", "Mark a version deprecated: still usable; compositions using it warn.")
_status_command("archive", "Archive a version: skipped by `latest` and default listings; @N still names it.")
_status_command("restore", "Make a deprecated or archived version active again.")


@app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="ns/name@N: the version to delete")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a version (a maintainer of its namespace, or an admin): refused while other versions
    descend from it. Lineage and audit keep its digest; its files are removed by `pemreg gc` after the
    grace period."""
    if not yes and not typer.confirm(f"delete {ref}?", err=True):
        raise typer.Exit(1)
    version = backend().delete_version(ref)
    console.print(f"{version.name}@{version.version} deleted (sha256:{version.sha256[:12]})", markup=False)


@app.command("tag")
def tag(
    name: Annotated[str, typer.Argument(help="ns/name")],
    tags: Annotated[list[str] | None, typer.Argument(help="key=value to set")] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="tag key to remove, repeatable")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Set or remove an adapter's tags (other tags are kept)."""
    changes: dict[str, str | None] = {**parse_tags(tags), **{k: None for k in remove or []}}
    if not changes:
        raise typer.BadParameter("give key=value to set or --remove KEY", param_hint="TAGS")
    adapter = backend().update_adapter(name.partition("@")[0], tags=changes, description=None)
    print_json(adapter) if json_out else console.print(
        f"{adapter.name} tags: " + (" ".join(f"{k}={v}" for k, v in adapter.tags.items()) or "-"),
        markup=False,
    )


@app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="ns/name")],
    description: Annotated[str, typer.Argument(help='the new description ("" clears it)')],
) -> None:
    """Replace an adapter's description."""
    adapter = backend().update_adapter(name.partition("@")[0], tags=None, description=description)
    console.print(f"{adapter.name}: {adapter.description or '(no description)'}", markup=False)
