"""Search and digest lookup served by indexes: trigram GIN indexes for `q` (PostgreSQL) and the
`artifact_files` digest table (both backends), including migration 0002's backfill."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg.sql
import pytest
from sqlalchemy import delete, event, select, text

from registry import service
from registry.catalog import models as m
from registry.catalog.db import get_engine, transaction
from registry.catalog.migrate import downgrade, upgrade
from registry.errors import NotFound
from registry.service import Registry
from registry.service.catalog import tag_walk
from registry.service.catalog.lifecycle import update_adapter
from registry.service.catalog.queries import search_words
from registry.service.compositions.merged import register_merged
from registry.settings import Settings


def _names(reg: Registry, q: str) -> list[str]:
    return [a.name for a in service.list_adapters(reg, query=q).items]


def test_search_matches_name_description_and_task(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    service.register_adapter(
        reg,
        adapter_dirs["lora"],
        "acme/math-tutor",
        task="arithmetic",
        description="Grade school word problems",
    )
    service.register_adapter(
        reg, adapter_dirs["lora2"], "beta/clinic", task="medicine", description="Clinical notes, ICD codes"
    )
    assert _names(reg, "tutor") == ["acme/math-tutor"]  # name
    assert _names(reg, "acme/ma") == ["acme/math-tutor"]  # across the namespace separator
    assert _names(reg, "TA/CLI") == ["beta/clinic"]  # case-insensitive, full name
    assert _names(reg, "word probl") == ["acme/math-tutor"]  # description
    assert _names(reg, "medic") == ["beta/clinic"]  # task
    assert _names(reg, "c") == ["acme/math-tutor", "beta/clinic"]  # shorter than a trigram
    assert _names(reg, "nowhere") == []


def _index_rows(reg: Registry) -> set[tuple[str, str, str]]:
    with reg.sessions() as session:
        rows = session.execute(select(m.ArtifactFile.kind, m.ArtifactFile.filename, m.ArtifactFile.digest))
        return {tuple(r) for r in rows}  # type: ignore[misc]


def test_digest_lookup_of_every_file_goes_through_artifact_files(
    reg: Registry, adapter_dirs: dict[str, Path]
) -> None:
    v, _ = service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    files = {name: entry["sha256"] for name, entry in v.files.items()}
    assert set(files) == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
        "MODEL_CARD.md",
        "provenance.json",
    }
    assert _index_rows(reg) == {("adapter_version", name, sha) for name, sha in files.items()}
    for name, sha in files.items():
        [match] = service.find_by_digest(reg, sha, with_ancestry=False)
        assert (match.kind, match.name, match.version, match.file) == (
            "adapter_version",
            "acme/math",
            1,
            name,
        )
    # Registering the same bytes again adds no version and no index rows.
    service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    assert len(_index_rows(reg)) == 5
    # The lookup reads the table, not the versions' JSON: without its rows only the weights digest
    # (an indexed column of the version itself) is still found.
    with transaction(reg.sessions) as session:
        session.execute(delete(m.ArtifactFile))
    with pytest.raises(NotFound):
        service.find_by_digest(reg, files["provenance.json"])
    [weights] = service.find_by_digest(reg, v.sha256, with_ancestry=False)
    assert weights.file == "adapter_model.safetensors"


def test_merged_model_files_are_indexed(reg: Registry, adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    run_id = str(uuid.uuid4())
    with transaction(reg.sessions) as session:
        session.add(
            m.Composition(
                id=run_id, output_name="acme/math", method="linear", principal="tester", status="running"
            )
        )
    folder = tmp_path / "merged"
    folder.mkdir()
    shard = folder / "model.safetensors"
    shard.write_bytes(b"merged weights")
    shard_sha = hashlib.sha256(b"merged weights").hexdigest()
    aggregate = register_merged(reg, run_id, "acme/math@1", folder, {"model.safetensors": shard_sha})
    [by_shard] = service.find_by_digest(reg, shard_sha)
    assert (by_shard.kind, by_shard.name, by_shard.file) == (
        "merged_model",
        "acme/math@1",
        "model.safetensors",
    )
    assert by_shard.ancestry is not None
    readme_sha = hashlib.sha256((folder / "README.md").read_bytes()).hexdigest()
    [by_card] = service.find_by_digest(reg, readme_sha, with_ancestry=False)
    assert (by_card.kind, by_card.file) == ("merged_model", "README.md")
    [whole] = service.find_by_digest(reg, aggregate, with_ancestry=False)
    assert (whole.kind, whole.file) == ("merged_model", "*")


# --- migration 0002: backfill on both backends --------------------------------------------------------


def _seed_at_0001(url: str) -> None:
    """Rows as a 0001 catalog holds them, written with plain SQL (today's models are one revision on)."""
    now = datetime.now(UTC)
    version_files = {
        "adapter_model.safetensors": {"sha256": "a" * 64, "size": 10},
        "adapter_config.json": {"sha256": "b" * 64, "size": 2},
        "README.md": {"sha256": "C" * 64, "size": 3},  # stored digests are lowercased on backfill
        "odd.txt": {"size": 1},  # no digest: nothing to index
    }
    merged_files = {"model.safetensors": {"sha256": "d" * 64, "size": 5}}
    common = {"by": "t", "at": now}
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO base_models (id, name, revision, source, created_by, created_at) "
                "VALUES (1, 'tiny', 'main', 'tiny', :by, :at)"
            ),
            common,
        )
        conn.execute(
            text(
                "INSERT INTO adapters (id, namespace, name, pem_type, base_model_id, created_by, created_at, "
                "updated_at) VALUES (1, 'acme', 'math', 'lora', 1, :by, :at, :at)"
            ),
            common,
        )
        conn.execute(
            text(
                "INSERT INTO adapter_versions (id, adapter_id, version, sha256, use_rslora, target_modules, "
                "dtype, size_bytes, num_parameters, files, extra, artifact_uri, created_by, created_at) "
                "VALUES (1, 1, 1, :sha, false, '[]', 'float32', 10, 1, :files, '{}', 'x', :by, :at)"
            ),
            {**common, "sha": "a" * 64, "files": json.dumps(version_files)},
        )
        conn.execute(
            text(
                "INSERT INTO merged_models (id, base_model_id, source_version_id, name, sha256, files, "
                "artifact_uri, created_by, created_at) "
                "VALUES (1, 1, 1, 'acme/math@1', :sha, :files, 'y', :by, :at)"
            ),
            {**common, "sha": "e" * 64, "files": json.dumps(merged_files)},
        )


def _backfill_round_trip(url: str) -> None:
    upgrade(url, "0001")
    _seed_at_0001(url)
    upgrade(url)
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            text("SELECT digest, kind, version_id, merged_model_id, filename FROM artifact_files")
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("a" * 64, "adapter_version", 1, None, "adapter_model.safetensors"),
        ("b" * 64, "adapter_version", 1, None, "adapter_config.json"),
        ("c" * 64, "adapter_version", 1, None, "README.md"),
        ("d" * 64, "merged_model", None, 1, "model.safetensors"),
    ]
    reg = Registry(Settings(database_url=url, principal="tester"))
    [found] = service.find_by_digest(reg, "b" * 64, with_ancestry=False)
    assert (found.name, found.file) == ("acme/math", "adapter_config.json")
    downgrade(url, "0001")
    upgrade(url)  # backfills again from the same rows
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM artifact_files")).scalar() == 4


def test_migration_backfills_artifact_files_sqlite(tmp_path: Path) -> None:
    _backfill_round_trip(f"sqlite:///{tmp_path / 'b.db'}")


@pytest.mark.postgres
def test_migration_backfills_artifact_files_postgres(fresh_pg_url: str) -> None:
    _backfill_round_trip(fresh_pg_url)


# --- PostgreSQL: the plans of the search list_adapters sends (migration 0013) -------------------------


def _seed_adapters(url: str, n: int) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO base_models (id, name, revision, source, created_by, created_at) "
                "VALUES (1, 'tiny', 'main', 'tiny', 't', now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO adapters (namespace, name, pem_type, task, description, base_model_id, "
                "created_by, created_at, updated_at) "
                "SELECT 'team' || lpad((i % 20)::text, 2, '0'), 'adapter-' || lpad(i::text, 6, '0'), 'lora', "
                "(ARRAY['math', 'law', 'code', 'chat'])[1 + i % 4], 'common words adapter number ' || i, "
                "1, 't', now(), now() FROM generate_series(1, :n) AS i"
            ),
            {"n": n},
        )
        conn.execute(text("ANALYZE adapters"))


def _sent_sql(
    reg: Registry, url: str, query: str | None, tags: dict[str, str] | None = None
) -> tuple[list[str], str, dict[str, Any]]:
    """Run list_adapters; return its names and the SQL and parameters it sent to PostgreSQL."""
    engine = reg.read_engine  # the pool catalog reads run on
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM adapters" in statement and any(w in statement for w in ("LIKE", "@>", "tag_entries")):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        names = [a.name for a in service.list_adapters(reg, query=query, tags=tags).items]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = sent
    return names, statement, parameters


def _plan(url: str, statement: str, parameters: dict[str, Any]) -> str:
    """EXPLAIN the statement as sent, with its values: the plan PostgreSQL makes for each search, since
    list_adapters runs searches unprepared (registry.catalog.db.PLAN_PER_VALUES)."""
    with get_engine(url).connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
        conn.rollback()
    return "\n".join(plan)


def _seeded(url: str, tmp_path: Path) -> Registry:
    upgrade(url)
    _seed_adapters(url, 5000)
    return Registry(Settings(database_url=url, home=tmp_path, principal="tester"))


@pytest.mark.postgres
def test_rare_term_search_uses_the_trigram_index(fresh_pg_url: str, tmp_path: Path) -> None:
    reg = _seeded(fresh_pg_url, tmp_path)
    names, statement, parameters = _sent_sql(reg, fresh_pg_url, "number 4321")
    assert names == ["team01/adapter-004321"]
    plan = _plan(fresh_pg_url, statement, parameters)
    assert "Bitmap Index Scan on ix_adapters_search_text" in plan, plan
    assert "Seq Scan on adapters" not in plan, plan
    names, statement, parameters = _sent_sql(reg, fresh_pg_url, "m17/adapter-0043")
    assert names == [f"team17/adapter-00{i}" for i in range(4317, 4400, 20)]
    assert "Bitmap Index Scan on ix_adapters_search_text" in _plan(fresh_pg_url, statement, parameters)


def _index_conditions(plan: str) -> list[str]:
    return [line.split("Index Cond:", 1)[1] for line in plan.splitlines() if "Index Cond:" in line]


@pytest.mark.postgres
def test_a_term_of_several_words_asks_the_index_for_each_word(fresh_pg_url: str, tmp_path: Path) -> None:
    """One LIKE of `number 4321` is one GIN key of all its trigrams, and GIN walks every trigram of a key
    to each candidate of its rarest: `number`'s trigrams are in every adapter. Each word its own key,
    the term itself checked on the candidates: the same answer from far fewer index entries."""
    reg = _seeded(fresh_pg_url, tmp_path)
    names, statement, parameters = _sent_sql(reg, fresh_pg_url, "number 4321")
    assert names == ["team01/adapter-004321"]
    assert sorted(v for v in parameters.values() if isinstance(v, str) and "%" in v) == [
        "%4321%",
        "%number 4321%",
        "%number%",
    ]
    plan = _plan(fresh_pg_url, statement, parameters)
    [trigrams] = [c for c in _index_conditions(plan) if "search_text" in c]
    assert "'%number%'" in trigrams and "'%4321%'" in trigrams, plan
    assert "number 4321" not in trigrams, plan  # checked on the candidates, not in the index
    # Words shorter than a trigram are not asked for (a key without trigrams reads the whole index);
    # the term still decides: `number 43` is 43, 430-439 and 4300-4399.
    names, _, parameters = _sent_sql(reg, fresh_pg_url, "number 43")
    assert "%43%" not in parameters.values()
    expected = sorted(
        (f"team{i % 20:02d}", f"adapter-{i:06d}")
        for i in range(1, 5001)
        if f"number {i}".find("number 43") >= 0
    )[:50]
    assert names == [f"{ns}/{name}" for ns, name in expected]


def _tag_gold_and_t7(url: str) -> None:
    """Every seeded adapter `tier:gold`, one in 50 also `team:t7`."""
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO adapter_tags (adapter_id, key, value) SELECT id, 'tier', 'gold' FROM adapters "
                "UNION ALL SELECT id, 'team', 't7' FROM adapters WHERE id % 50 = 7"
            )
        )


@pytest.mark.postgres
def test_each_tag_is_its_own_index_key(
    fresh_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every tag of a filter is common (tag_walk.WALK_MAX; here lowered so that 100 adapters are
    many), the GIN index intersects them: two tags are two `tag_set @>` conditions (two GIN keys
    intersected by skipping), not one array of both, whose rarer element's every candidate walked the
    commoner one's posting list."""
    monkeypatch.setattr(tag_walk, "WALK_MAX", 50)
    reg = _seeded(fresh_pg_url, tmp_path)
    _tag_gold_and_t7(fresh_pg_url)
    with get_engine(fresh_pg_url).begin() as conn:
        conn.execute(text("ANALYZE adapters"))
    names, statement, parameters = _sent_sql(reg, fresh_pg_url, None, {"tier": "gold", "team": "t7"})
    expected = sorted((f"team{i % 20:02d}", f"adapter-{i:06d}") for i in range(1, 5001) if i % 50 == 7)[:50]
    assert names == [f"{ns}/{name}" for ns, name in expected]
    assert statement.count("tag_set @>") == 2, statement
    plan = _plan(fresh_pg_url, statement, parameters)
    [tags] = [c for c in _index_conditions(plan) if "tag_set" in c]
    assert tags.count("tag_set @>") == 2, plan


def _generic_plan(url: str, statement: str, parameters: dict[str, Any]) -> str:
    """The plan of `statement` PREPAREd with its parameters unknown (`$n`) and a generic plan forced:
    what PostgreSQL runs once psycopg has prepared a statement executed often."""
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", placeholder, statement)
    with get_engine(url).connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        values = ", ".join(psycopg.sql.Literal(parameters[n]).as_string(raw) for n in names)
        conn.exec_driver_sql(f"PREPARE listing AS {prepared}")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        plan = conn.exec_driver_sql(f"EXPLAIN EXECUTE listing({values})").scalars().all()
        conn.exec_driver_sql("DEALLOCATE listing")
        conn.rollback()
    return "\n".join(plan)


@pytest.mark.postgres
def test_a_tag_filter_walks_its_rarest_tag_in_listing_order(fresh_pg_url: str, tmp_path: Path) -> None:
    """A filter with a rare tag walks that tag's entries (tag_entries, migration 0017) in listing order
    index-only, probes the common tag per entry, and stops at the page's last match: no sort of every
    match, no read of the GIN index, whichever order the tags are given in. Prepared as psycopg prepares
    a statement run often (a generic plan): the plan must not depend on the values."""
    reg = _seeded(fresh_pg_url, tmp_path)
    _tag_gold_and_t7(fresh_pg_url)
    with get_engine(fresh_pg_url).connect() as conn:  # index-only once vacuumed
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE tag_entries")
    expected = sorted((f"team{i % 20:02d}", f"adapter-{i:06d}") for i in range(1, 5001) if i % 50 == 7)[:50]
    for tags in ({"tier": "gold", "team": "t7"}, {"team": "t7", "tier": "gold"}):
        names, statement, parameters = _sent_sql(reg, fresh_pg_url, None, tags)
        assert names == [f"{ns}/{name}" for ns, name in expected]
        assert "@>" not in statement, statement
        assert (parameters["tag_key_0"], parameters["tag_value_0"]) == ("team", "t7")  # the rarer walks
        plan = _generic_plan(fresh_pg_url, statement, parameters)
        assert "Index Only Scan using pk_tag_entries on tag_entries" in plan, plan
        assert "Sort" not in plan and "ix_adapters_tag_set" not in plan, plan


@pytest.mark.postgres
def test_common_term_search_walks_the_listing_order_index_only(fresh_pg_url: str, tmp_path: Path) -> None:
    """A term most adapters match, not one word (those have search_words): the page is the first matches
    of an index-only walk in (namespace, name) order, not a sort of every match nor a read of the table
    row by row."""
    reg = _seeded(fresh_pg_url, tmp_path)
    with get_engine(fresh_pg_url).connect() as conn:  # the walk is index-only once the table is vacuumed
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE adapters")
    names, statement, parameters = _sent_sql(reg, fresh_pg_url, "words adapter")
    # every description has it (_seed_adapters); namespace team{i % 20}: the first page, independently
    expected = sorted((f"team{i % 20:02d}", f"adapter-{i:06d}") for i in range(1, 5001))[:50]
    assert names == [f"{ns}/{name}" for ns, name in expected]
    plan = _plan(fresh_pg_url, statement, parameters)
    assert "Index Only Scan using ix_adapters_order_search on adapters" in plan, plan
    assert "Seq Scan on adapters" not in plan and "Sort Key: searched" not in plan, plan


@pytest.mark.postgres
def test_searches_are_planned_per_term_other_listings_prepared(fresh_pg_url: str, tmp_path: Path) -> None:
    """psycopg prepares a statement after 5 executions and PostgreSQL may then plan it once for every
    value; a search's right plan depends on its term, so searches are sent unprepared."""
    reg = _seeded(fresh_pg_url, tmp_path)
    engine = reg.read_engine  # the pool catalog reads run on
    engine.dispose()  # one pooled connection, reused by every call below
    for i in range(8):
        service.list_adapters(reg, query=f"number {i}")
        service.list_adapters(reg, task="law")
    with engine.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
    listings = [s for s in prepared if "FROM adapters" in s]
    assert listings and not [s for s in listings if "search_text" in s], prepared


def test_search_words_are_the_terms_runs_of_letters_and_digits() -> None:
    assert search_words("number 4242") == ("4242", "number")
    assert search_words("trivia") == search_words("TRIVIA") == ()  # one word: the term is its condition
    assert search_words("ab cd") == ()  # no word long enough to have a trigram
    assert search_words("number 7") == ("number",)
    assert search_words("a_b%cde\\fgh") == ("cde", "fgh")  # wildcards and backslashes split words
    assert search_words("-4242") == ("4242",)
    assert search_words("one three fivefive seven sixsix four") == ("fivefive", "seven", "sixsix", "three")


Texts = dict[str, tuple[str, str]]  # full name: (task, description)


def _register(reg: Registry, adapter_dirs: dict[str, Path], texts: Texts) -> None:
    for name, (task, description) in texts.items():
        service.register_adapter(reg, adapter_dirs["lora"], name, task=task, description=description)


def _by_the_rule(texts: Texts, term: str) -> list[str]:
    """The adapters whose full name, description or task contains the term, lowercased (the search
    rule, computed here from the registered texts), in listing order."""
    return sorted(
        name
        for name, (task, description) in texts.items()
        if any(term.lower() in part.lower() for part in (name, description, task))
    )


def test_terms_of_several_words_match_by_the_rule(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    """On both backends, each term's matches are the adapters whose full name, description or task
    contains it (lowercased), computed here from the registered texts."""
    texts = {
        "acme/math-tutor": ("arithmetic", "Grade school word problems, number 4242"),
        "acme/number-42": ("arithmetic", "number 42 and number 4200"),
        "beta/clinic": ("medicine", "Clinical notes, ICD codes"),
        "beta/clinical-notes": ("medicine", "notes on a clinic"),
        "gamma/x": ("law", "contracts adapter: number 4242-b"),
    }
    _register(reg, adapter_dirs, texts)
    for term in (
        "number 4242",
        "number 42",
        "clinical notes",
        "notes, icd",
        "notes on",
        "word problems",
        "tutor grade",  # in two parts: no match
        "MATH-TUTOR",
        "4242-b",
        "r 42",
        "a/clinic",
    ):
        assert _names(reg, term) == _by_the_rule(texts, term), term


def test_a_term_spanning_two_parts_matches_nothing(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    """search_text joins the parts with newlines; a wildcard must not match across them."""
    service.register_adapter(
        reg, adapter_dirs["lora"], "acme/math-tutor", task="arithmetic", description="Grade school"
    )
    assert _names(reg, "tutor") == ["acme/math-tutor"]
    assert _names(reg, "school_arith") == []  # `_` would match the newline between description and task
    assert _names(reg, "tutor%grade") == []
    assert _names(reg, "tutor\ngrade") == []
    assert _names(reg, "gr_de%sch") == ["acme/math-tutor"]  # wildcards inside one part still match


def test_a_backslash_in_the_term_is_a_character(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    """On both backends: PostgreSQL's LIKE would read `100\\` as "ends with 100%" (its escape)."""
    service.register_adapter(
        reg, adapter_dirs["lora"], "acme/score", task="math", description="Accuracy 100%"
    )
    service.register_adapter(reg, adapter_dirs["lora"], "acme/path", task="ops", description="C:\\data\\100")
    assert _names(reg, "100\\") == []
    assert _names(reg, "c:\\data\\") == ["acme/path"]
    assert _names(reg, "100") == ["acme/path", "acme/score"]


def test_search_with_tags_pages_in_listing_order(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    """A search orders and pages by its own reference to adapters; tag filters and page tokens with it."""
    for name in ("zeta/tutor-b", "acme/tutor-c", "acme/tutor-a", "beta/other"):
        service.register_adapter(reg, adapter_dirs["lora"], name, tags={"tier": "gold"})
    seen, token = [], None
    while True:
        page = service.list_adapters(reg, query="tutor", tags={"tier": "gold"}, limit=1, page_token=token)
        seen += [a.name for a in page.items]
        if not (token := page.next_page_token):
            break
    assert seen == sorted(["zeta/tutor-b", "acme/tutor-c", "acme/tutor-a"])


# --- one-word terms: the word index (migration 0016, PostgreSQL) --------------------------------------


def _all_pages(reg: Registry, term: str, limit: int) -> list[str]:
    seen, token = [], None
    while True:
        page = service.list_adapters(reg, query=term, limit=limit, page_token=token)
        seen += [a.name for a in page.items]
        if not (token := page.next_page_token):
            return seen


def test_one_word_terms_match_by_the_rule_on_every_page(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    """On both backends (PostgreSQL answers a one-word term from search_words, SQLite by the rule itself):
    each term's matches, paged two at a time, are the adapters whose full name, description or task
    contains it, in listing order, computed here from the registered texts."""
    many = " ".join(f"zqa{i:02d}" for i in range(40))  # more words containing `zqa` than the index walks
    texts = {
        "acme/math-tutor": ("arithmetic", "Grade school word problems, number 4242"),
        "acme/tutoring": ("arithmetic", "Tutors: 14242 and 42420"),
        "beta/clinic": ("medicine", "Clinical notes, ICD codes"),
        "beta/clinical-notes": ("medicine", "notes on a clinic"),
        "gamma/x": ("law", f"contracts adapter {many}"),
        "gamma/zqa07-only": ("law", "one"),
        "delta/plain": ("chat", "Écrit à la main; naïve text"),
    }
    _register(reg, adapter_dirs, texts)
    for term in (
        "tutor",
        "TUTOR",
        "rith",
        "clinic",
        "4242",
        "424",
        "zqa",
        "zqa07",
        "notes",
        "naïve",
        "ve",
        "zzz",
    ):
        assert _all_pages(reg, term, 2) == _by_the_rule(texts, term), term
    # A description changed, then cleared: the term follows it.
    update_adapter(reg, "delta/plain", description="a tutor now")
    assert _all_pages(reg, "tutor", 2) == ["acme/math-tutor", "acme/tutoring", "delta/plain"]
    update_adapter(reg, "delta/plain", description="")
    assert _all_pages(reg, "tutor", 2) == ["acme/math-tutor", "acme/tutoring"]


def _words_of(search_text: str) -> set[str]:
    """The words of search_text the index holds, computed independently of the triggers."""
    found, word = set(), ""
    for ch in search_text + " ":
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            word += ch
        else:
            if len(word) >= 3:
                found.add(word)
            word = ""
    return found


def _index_state(url: str) -> tuple[dict[int, set[str]], dict[int, set[str]], set[tuple[str, str]]]:
    """(words per adapter from search_text, words per adapter in search_words, vocabulary pairs)."""
    with get_engine(url).connect() as conn:
        texts = conn.execute(text("SELECT id, search_text FROM adapters")).all()
        rows = conn.execute(
            text(
                "SELECT w.adapter_id, w.word, w.namespace = a.namespace AND w.name = a.name "
                "FROM search_words w JOIN adapters a ON a.id = w.adapter_id"
            )
        ).all()
        vocabulary = {
            (ns, w) for ns, w in conn.execute(text("SELECT namespace, word FROM search_vocabulary"))
        }
    assert all(same for _, _, same in rows)  # each row carries its adapter's namespace and name
    indexed: dict[int, set[str]] = {}
    for adapter_id, word, _ in rows:
        indexed.setdefault(adapter_id, set()).add(word)
    return {i: _words_of(s) for i, s in texts if _words_of(s)}, indexed, vocabulary


@pytest.mark.postgres
def test_the_database_keeps_search_words_equal_to_search_text(fresh_pg_url: str) -> None:
    """Whoever writes adapters (here plain SQL: a multi-row insert, updates, a delete), search_words holds
    each adapter's words of three or more letters and digits, and the vocabulary every word each
    namespace's adapters have had; migration 0016 fills both for a catalog that already has adapters."""
    upgrade(fresh_pg_url, "0015")
    _seed_adapters(fresh_pg_url, 30)
    upgrade(fresh_pg_url)  # the backfill
    expected, indexed, vocabulary = _index_state(fresh_pg_url)
    assert len(expected) == 30 and indexed == expected
    assert ("team07", "adapter") in vocabulary and ("team07", "000007") in vocabulary
    with get_engine(fresh_pg_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO adapters (namespace, name, pem_type, task, description, base_model_id, "
                "created_by, created_at, updated_at) VALUES "
                "('acme', 'Tutor-V2', 'lora', 'math', 'Ünïcode words: café x1 ab abc', 1, 't', now(), now()),"
                " "
                "('acme', 'plain', 'lora', NULL, NULL, 1, 't', now(), now())"
            )
        )
        conn.execute(
            text("UPDATE adapters SET description = 'rewritten poetry' WHERE name = 'adapter-000003'")
        )
        conn.execute(
            text("UPDATE adapters SET latest_listed = 7 WHERE name = 'adapter-000004'")
        )  # not a text
        conn.execute(text("DELETE FROM adapters WHERE name = 'adapter-000005'"))
    expected, indexed, vocabulary = _index_state(fresh_pg_url)
    assert indexed == expected
    acme = {w for ns, w in vocabulary if ns == "acme"}
    assert {"tutor", "math", "words", "caf", "abc", "plain"} <= acme and "x1" not in acme and "ab" not in acme
    assert ("team03", "poetry") in vocabulary
    assert ("team03", "common") in vocabulary  # append-only: a word no adapter has any more stays
    downgrade(fresh_pg_url, "0015")
    with get_engine(fresh_pg_url).connect() as conn:
        tables = set(
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        )
    assert not tables & {"search_words", "search_vocabulary"}


@pytest.mark.postgres
def test_a_one_word_term_walks_its_words_in_listing_order(fresh_pg_url: str, tmp_path: Path) -> None:
    """`law` (a quarter of the adapters, in every namespace): the page is the first entries of an
    index-only walk of search_words per word containing the term; no walk of adapters or sort of every
    match. A term in more words than the index walks is answered by search_text's indexes."""
    reg = _seeded(fresh_pg_url, tmp_path)
    with get_engine(fresh_pg_url).connect() as conn:  # the walk is index-only once the table is vacuumed
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE search_words")
    names, statements = _sent_statements(reg, fresh_pg_url, "law")
    expected = sorted((f"team{i % 20:02d}", f"adapter-{i:06d}") for i in range(1, 5001) if i % 4 == 1)[:50]
    assert names == [f"{ns}/{name}" for ns, name in expected]
    [(statement, parameters)] = statements  # one round trip
    plan = _plan(fresh_pg_url, statement, parameters)
    assert "Index Only Scan using pk_search_words on search_words" in plan, plan
    assert "Bitmap Index Scan on ix_search_vocabulary_word" in plan, plan
    assert "search_text" not in plan and "Seq Scan on adapters" not in plan, plan
    # `00` is in too many numbers: the word index answers nothing (a one-time check, before any walk),
    # then search_text's indexes do.
    names, statements = _sent_statements(reg, fresh_pg_url, "000")
    assert len(names) == 50 and len(statements) == 2 and "search_text" in statements[1][0]


def _sent_statements(reg: Registry, url: str, query: str) -> tuple[list[str], list[tuple[str, Any]]]:
    engine = reg.read_engine  # the pool catalog reads run on
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM adapters" in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        names = [a.name for a in service.list_adapters(reg, query=query).items]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return names, sent


@pytest.mark.postgres
def test_the_word_index_answers_by_readable_words_only(fresh_pg_url: str, tmp_path: Path) -> None:
    """The vocabulary is kept per namespace: a private namespace's words neither appear in an outsider's
    search nor change how it is answered (40 words containing `zqa` there; one in a readable one)."""
    from registry.service.access.identity import Access
    from registry.service.access.namespaces import create_namespace

    upgrade(fresh_pg_url)
    _seed_adapters(fresh_pg_url, 20)
    admin = Registry(Settings(database_url=fresh_pg_url, home=tmp_path, principal="tester"))
    create_namespace(admin, "secret", visibility="private")
    create_namespace(admin, "team01", visibility="internal")
    many = " ".join(f"zqa{i:02d}" for i in range(40))
    with get_engine(fresh_pg_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO adapters (namespace, name, pem_type, description, base_model_id, created_by, "
                "created_at, updated_at) VALUES ('secret', 'hidden', 'lora', :many, 1, 't', now(), now()), "
                "('team01', 'zqa-open', 'lora', NULL, 1, 't', now(), now())"
            ),
            {"many": many},
        )
    outsider = admin.acting_as(Access("key:outsider", "reader"))
    names, statements = _sent_statements(outsider, fresh_pg_url, "zqa")
    assert names == ["team01/zqa-open"] and len(statements) == 1  # the word index, as if `secret` were empty
    names, statements = _sent_statements(admin, fresh_pg_url, "zqa")
    assert names == ["secret/hidden", "team01/zqa-open"] and len(statements) == 2  # 41 words: search_text
    assert _sent_statements(outsider, fresh_pg_url, "zqa07")[0] == []


@pytest.mark.postgres
@pytest.mark.parametrize("walk_max", [tag_walk.WALK_MAX, 0], ids=["walked", "intersected"])
def test_tag_filter_pages_are_the_rule_whether_walked_or_intersected(
    fresh_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walk_max: int
) -> None:
    """Every page of a tag filter, followed by its tokens, as an admin and as a reader who cannot see a
    private namespace: the adapters having every tag, in (namespace, name) order, computed here from the
    seeded rows. With WALK_MAX at 0 no tag is rare enough to walk, and the GIN index answers."""
    monkeypatch.setattr(tag_walk, "WALK_MAX", walk_max)
    reg = _seeded(fresh_pg_url, tmp_path)
    with get_engine(fresh_pg_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO adapter_tags (adapter_id, key, value) "
                "SELECT id, 'tier', (ARRAY['gold', 'silver', 'bronze'])[1 + id % 3] FROM adapters "
                "UNION ALL SELECT id, 'team', 't' || (id % 50) FROM adapters"
            )
        )
        conn.execute(
            text(
                "INSERT INTO namespaces (name, visibility, protected_aliases, created_by, created_at, "
                "updated_at) SELECT 'team' || lpad(n::text, 2, '0'), "
                "CASE WHEN n = 3 THEN 'private' ELSE 'internal' END, '[]', 't', now(), now() "
                "FROM generate_series(0, 19) AS n"
            )
        )
    from registry.service.admin.keys import authenticate, create_key

    reader = reg.acting_as(authenticate(reg, create_key(reg, "tag-reader", "reader")))
    tiers = ["gold", "silver", "bronze"]
    adapters = [(f"team{i % 20:02d}", f"adapter-{i:06d}", tiers[i % 3], f"t{i % 50}") for i in range(1, 5001)]
    filters = [
        {"team": "t3"},
        {"tier": "gold", "team": "t3"},
        {"team": "t8", "tier": "silver"},
        {"tier": "gold"},
    ]
    for who, hidden in ((reg, set()), (reader, {"team03"})):
        for tags in filters:
            expected = sorted(
                f"{ns}/{name}"
                for ns, name, tier, team in adapters
                if ns not in hidden and tags.get("tier", tier) == tier and tags.get("team", team) == team
            )
            listed: list[str] = []
            token = None
            for _ in range(len(expected) // 13 + 2):
                page = service.list_adapters(who, tags=tags, limit=13, page_token=token)
                listed += [a.name for a in page.items]
                token = page.next_page_token
                if token is None:
                    break
            assert listed == expected, (tags, who is reader)
