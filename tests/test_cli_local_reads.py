"""The CLI's catalog reads in local mode (adapters, lineage, keys, whoami, namespaces, audit-log, base
models): the service layer's Core statements on this machine's catalog, with no ORM, pydantic-settings,
torch, Prefect or boto3 in the process (benchmarks/cli_latency.py: each costs start-up time), and on the
embedded catalog no SQLAlchemy either once a read's statements are compiled (registry.catalog.prepared);
the same answers as the service layer gives the REST API."""

from __future__ import annotations

import json
from pathlib import Path

from registry.service import Registry, register_adapter, set_alias
from registry.service.access.namespace_reads import get_namespace, list_grants, list_namespaces, whoami
from registry.service.access.namespaces import create_namespace, set_grant
from registry.service.admin.keys import create_key
from registry.service.catalog.audit_reads import list_events
from registry.service.catalog.lineage import lineage
from registry.service.catalog.queries import get_version, list_adapters, show_adapter
from registry.service.registration.base_reads import list_base_models, show_base_model
from registry.synthetic import make_ia3, make_lora
from registry.training import parse_training
from tests.cli_imports import local_heavy_in, run_and_list_modules
from tests.cli_inproc import pemreg
from tests.live_server import clean_env

READS = (
    ("adapters", "list"),
    ("adapters", "list", "--query", "math", "--task", "math"),
    ("adapters", "list", "--metric", "acc>=0.5", "--tag", "tier=gold"),
    ("adapters", "show", "lean/math"),
    ("adapters", "show", "lean/math@prod"),
    ("adapters", "show", "lean/math@sha256:0000000000"),  # a miss: exit 1, same imports
    ("lineage", "lean/math@1"),
    ("lineage", "lean/math@2", "--down", "--format", "json"),
    ("keys", "list"),
    ("whoami",),
    ("namespaces", "list"),
    ("namespaces", "show", "hush"),
    ("namespaces", "show", "nowhere"),  # a miss: exit 1, same imports
    ("audit-log",),
    ("audit-log", "--subject", "lean/math", "--json"),
    ("base-models", "list"),
    ("base-models", "show", "tiny-llama"),
    ("base-models", "show", "tiny-lama"),  # a miss: exit 1 with near matches, same imports
)
MISSES = {"lean/math@sha256:0000000000", "tiny-lama", "nowhere"}
# On the embedded catalog a read's statements are compiled once and kept (registry.catalog.prepared): from
# its second run on, a read imports no SQLAlchemy at all. A base that is not registered is refused with
# near matches, read on Core.
CORE_AFTER_WARM = {"tiny-lama"}


def _catalog(reg: Registry, tmp_path: Path) -> dict[str, str]:
    trained = parse_training(["acc=0.9"])
    gold = {"tier": "gold"}
    register_adapter(
        reg, str(make_lora(tmp_path / "a", seed=1)), "lean/math", task="math", tags=gold, training=trained
    )
    register_adapter(reg, str(make_lora(tmp_path / "b", seed=2)), "lean/math", task="math")
    register_adapter(reg, str(make_ia3(tmp_path / "c", seed=3)), "lean/style")
    set_alias(reg, "lean/math@1", "prod")
    create_key(reg, "lean-ci", "reader")
    create_namespace(reg, "hush", visibility="private", protected_aliases=["prod"], description="private")
    set_grant(reg, "hush", "key:lean-ci", "writer")
    set_grant(reg, "hush", "group:ml", "reader")
    s = reg.settings
    return clean_env(
        PEMREG_HOME=str(s.home),
        PEMREG_DATABASE_URL=s.resolved_database_url,
        PEMREG_ARTIFACT_STORE=s.resolved_artifact_store,
        PEMREG_PRINCIPAL=s.principal,
        COLUMNS="200",
    )


def test_local_catalog_reads_import_no_orm_nor_settings(reg: Registry, tmp_path: Path) -> None:
    env = _catalog(reg, tmp_path)
    embedded = env["PEMREG_DATABASE_URL"].startswith("sqlite:///")
    for args in READS:
        done, modules = run_and_list_modules(env, *args)
        assert done.returncode in (0, 1), (args, done.stderr)
        assert local_heavy_in(modules) == set(), (args, sorted(local_heavy_in(modules)))
        assert done.returncode == (1 if args[-1] in MISSES else 0), (args, done.stderr)
        if embedded:
            again, modules = run_and_list_modules(env, *args)
            assert (again.returncode, again.stdout) == (done.returncode, done.stdout), args
            core = {m for m in modules if m.split(".")[0] == "sqlalchemy"}
            assert bool(core) == (args[-1] in CORE_AFTER_WARM), (args, sorted(core)[:5])
    if embedded:  # kept under PEMREG_HOME, one file for this version of the code
        assert len(list((Path(env["PEMREG_HOME"]) / "cache" / "sql").glob("*.json"))) == 1


def _json(env: dict[str, str], *args: str) -> object:
    done = pemreg(env, *args)  # in this process: what it answers, not what it imports
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_local_reads_answer_what_the_service_answers(reg: Registry, tmp_path: Path) -> None:
    """The lean CLI path (LocalCatalog, no Registry) and the Registry the REST API uses agree."""
    env = _catalog(reg, tmp_path)
    assert _json(env, "adapters", "list", "--json") == list_adapters(reg).model_dump(mode="json")
    filtered = _json(env, "adapters", "list", "--metric", "acc>=0.5", "--tag", "tier=gold", "--json")
    assert filtered == list_adapters(reg, metrics=["acc>=0.5"], tags={"tier": "gold"}).model_dump(mode="json")
    assert [a["name"] for a in filtered["items"]] == ["lean/math"]  # type: ignore[index]
    assert _json(env, "adapters", "show", "lean/math@prod", "--json") == get_version(
        reg, "lean/math@prod"
    ).model_dump(mode="json")
    shown = _json(env, "adapters", "show", "lean/math", "--json")
    assert shown == show_adapter(reg, "lean/math").model_dump(mode="json")
    graph = _json(env, "lineage", "lean/math@1", "--format", "json")
    assert graph == lineage(reg, "lean/math@1").model_dump(mode="json")
    assert _json(env, "whoami", "--json") == whoami(reg).model_dump(mode="json")
    listed = _json(env, "namespaces", "list", "--json")
    assert listed == [ns.model_dump(mode="json") for ns in list_namespaces(reg)]
    assert [ns["name"] for ns in listed] == ["hush", "lean"]  # the private one too: the operator is admin
    shown_ns = _json(env, "namespaces", "show", "hush", "--json")
    assert shown_ns == {
        **get_namespace(reg, "hush").model_dump(mode="json"),
        "grants": [g.model_dump(mode="json") for g in list_grants(reg, "hush")],
    }
    assert (shown_ns["visibility"], shown_ns["owned"], shown_ns["role"]) == ("private", True, "admin")
    assert [(g["subject"], g["role"]) for g in shown_ns["grants"]] == [
        ("group:ml", "reader"),
        ("key:lean-ci", "writer"),
    ]
    assert all(g["granted_at"].endswith(("Z", "+00:00")) for g in shown_ns["grants"])
    events = _json(env, "audit-log", "--subject", "lean/math", "--json")
    assert events == [e.model_dump(mode="json") for e in list_events(reg, subject="lean/math", limit=50)]
    assert {e["action"] for e in events} >= {"register", "alias_move"}
    bases = _json(env, "base-models", "list", "--json")
    assert bases == [b.model_dump(mode="json") for b in list_base_models(reg)]
    shown_base = _json(env, "base-models", "show", "tiny-llama", "--json")
    assert shown_base == show_base_model(reg, "tiny-llama").model_dump(mode="json")
    assert shown_base["adapters"] == ["lean/math", "lean/style"]


def test_every_lean_read_runs_with_the_collector_paused_and_each_paused_read_is_a_command(
    tmp_path: Path,
) -> None:
    """api/cli/main.py's READS (commands run with the cyclic collector paused) and this file's READS (the
    lean local reads) name the same commands; and each name there is a command `pemreg` knows."""
    from api.cli.main import READS as PAUSED

    lean = {args[0] if args[0] in PAUSED else " ".join(args[:2]) for args in READS}
    assert lean == PAUSED, (sorted(PAUSED), sorted(lean))
    env = clean_env(PEMREG_HOME=str(tmp_path / "home"))
    for command in PAUSED:
        done = pemreg(env, *command.split(), "--help")
        assert done.returncode == 0 and "Usage" in done.stdout, (command, done.stderr)
