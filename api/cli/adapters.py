"""`pemreg adapters add|list|show|download|pull|alias|tag|describe|deprecate|archive|restore|delete`.

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


def training_lines(v: VersionView) -> list[str]:
    """The version's training record, as the registrant gave it (nothing when none was given)."""
    t = v.training
    lines = []
    if t.metrics:
        lines.append("  metrics: " + "  ".join(f"{k}={val:g}" for k, val in t.metrics.items()))
    if t.params:
        lines.append("  params: " + "  ".join(f"{k}={val}" for k, val in t.params.items()))
    lines += [f"  dataset: {uri}" for uri in t.datasets]
    return lines


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
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="training metric name=number, repeatable")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="hyper-parameter name=value, repeatable")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="URI of a training dataset, repeatable")
    ] = None,
    allow_deleted: Annotated[
        bool,
        typer.Option("--allow-deleted", help="these bytes were a deleted version: bring that version back"),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Validate an adapter folder, upload it, and register it as the next version (with its training
    record: --metric, --param, --dataset)."""
    from registry.training import parse_training

    tags = parse_tags(tag)
    training = parse_training(metric, param, dataset)
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
            allow_deleted=allow_deleted,
            training=training,
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
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="a version's training metric, e.g. 'accuracy>=0.8' (repeatable)"),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="a version's hyper-parameter name=value (repeatable)")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="a version's training dataset URI (repeatable)")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List adapters matching every filter given."""
    training: dict[str, object] = {}
    if metric or param or dataset:  # only then: remote listings keep the client's own signature
        training = {"metrics": metric or [], "params": parse_tags(param, "param"), "datasets": dataset or []}
    page = backend().list_adapters(
        base_model=base_model,
        pem_type=pem_type,
        task=task,
        tags=parse_tags(tag),
        query=query,
        limit=limit,
        page_token=page_token,
        include_archived=include_archived,
        **training,
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
    if a.versions:
        print_table(table)


def _why_empty(everything: AdapterView) -> str:
    """An empty version table after archive/delete says what it hides and how to see it."""
    counts: dict[str, int] = {}
    for v in everything.versions or []:
        counts[v.status] = counts.get(v.status, 0) + 1
    if not counts:
        return "  no versions registered"
    hidden = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"  no active or deprecated versions ({hidden}); --include-archived lists them"


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
            for line in training_lines(version):
                console.print(line, markup=False, soft_wrap=True)
        return
    adapter = backend().show_adapter(ref, include_archived=include_archived)
    if json_out:
        print_json(adapter)
        return
    _print_adapter(adapter)
    if not adapter.versions:
        everything = adapter if include_archived else backend().show_adapter(ref, include_archived=True)
        console.print(_why_empty(everything), markup=False, soft_wrap=True)


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


@app.command("pull")
def pull(
    ref: Annotated[str, typer.Argument(help="ns/name[@N|@alias|@sha256:prefix]")],
    dest: Annotated[Path, typer.Argument(help="the serving host's adapter folder (vLLM resolver / LoRAX)")],
    link: Annotated[
        str | None, typer.Option("--link", help="name of the link to the version (default: the ref's alias)")
    ] = None,
) -> None:
    """Lay a version out for vLLM's filesystem resolver and LoRAX: DIR/NS/NAME@SHA8/ holds its files
    (sha256-checked; adapter_config.json's base path set to the registered base's source), and
    DIR/NS/NAME@ALIAS links to it (moved atomically by a later pull). Pulling again is a no-op."""
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"{dest} exists and is not a folder", field="DIR")
    selector = ref.partition("@")[2] or "latest"
    with transfer_progress("pulling") as progress:
        refs, folder = backend().pull(ref, dest, link=link or selector, progress=progress)
    base = refs.base_model_source or refs.base_model
    console.print(
        f"{refs.name}@{refs.version} -> {folder} (sha256 verified; base {base})", markup=False, soft_wrap=True
    )
    console.print(
        f"vLLM model name: {refs.name}@{link or selector}  (or {folder.parent.name}/{folder.name})",
        markup=False,
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
    ref: Annotated[str, typer.Argument(help="ns/name@N (or @alias, @sha256:prefix): the version to delete")],
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="REF is ns/name: delete every version of it")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a version (a maintainer of its namespace, or an admin): refused while other versions descend
    from it. Lineage and audit keep its digest; `pemreg adapters undelete` brings it back until `pemreg gc`
    removes its files (after the grace period)."""
    name, _, selector = ref.partition("@")
    if all_versions and selector:
        raise InvalidInput(f"{ref}: --all-versions takes a bare ns/name", field="REF")
    if not all_versions and not selector:
        raise InvalidInput(f"{ref} names no version; write {ref}@N (or pass --all-versions)", field="REF")
    what = f"every version of {name}" if all_versions else ref
    if not yes and not typer.confirm(f"delete {what}?", err=True):
        raise typer.Exit(1)
    versions = backend().delete_adapter(name) if all_versions else [backend().delete_version(ref)]
    for version in versions:
        console.print(
            f"{version.name}@{version.version} deleted (sha256:{version.sha256[:12]}); "
            f"`pemreg adapters undelete {version.name}@{version.version}` until gc",
            markup=False,
            soft_wrap=True,
        )


@app.command("undelete")
def undelete(
    ref: Annotated[str, typer.Argument(help="ns/name@N or ns/name@sha256:prefix of a deleted version")],
    json_out: JsonOpt = False,
) -> None:
    """Bring a deleted version back (admin) with the status it had, while `pemreg gc` has not removed
    its files. Its aliases are not restored."""
    if "@" not in ref:
        raise InvalidInput(f"{ref} names no version; write {ref}@N", field="REF")
    version = backend().undelete(ref)
    print_json(version) if json_out else console.print(
        f"{version.name}@{version.version} is {version.status} again", markup=False
    )


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
