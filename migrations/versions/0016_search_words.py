"""a common search term's first page from an index of words in listing order (PostgreSQL)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 13:30:00.000000

At 1M versions (benchmarks/catalog_load.py) `q=trivia` matches 10,000 of 100k adapters, all in two of
twenty namespaces: the first page was found after an index-only walk of the listing's order over the
nine namespaces before them (45,000 entries, ~23 ms), or by reading all 10,000 matches through the
trigram index and sorting them (60 ms). Neither can stop at the page's last match without visiting
the others.

A term that is one run of letters and digits only occurs inside one such run of search_text (a word),
so the adapters it matches are those with a word containing it. `search_words` holds each adapter's
words of three or more characters with its namespace and name, keyed in that order: for each word
containing the term, its adapters are in listing order, and the page is the first ones of a merge of
a few such walks. `search_vocabulary` holds which words each namespace's adapters have had, under a
trigram index: it answers which words contain the term (registry.service.catalog.queries).

The database keeps both, whoever writes adapters (the service, a bulk COPY, psql): a statement-level
trigger adds an inserted statement's words in one pass (a COPY of 100k adapters included), a row-level
one re-adds an adapter's words when its search_text changes, and deleting an adapter deletes its words
(foreign key). The vocabulary is append-only and not unique: two registrations adding the same new
word never wait on each other, and a word no adapter has any more only costs an empty walk.
PostgreSQL only: SQLite's listings do not use them (no trigram index there).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_IDS = 10_000
# Frozen copies of registry.catalog.tables.SEARCH_WORD_PATTERN and SEARCH_WORD_MIN (a migration must not
# import the models).
WORD = "[0-9a-z]+"
MIN_LENGTH = 3


def _add_words(source: str) -> str:
    """One statement: the words of the adapters `source` yields (id, namespace, name, search_text) into
    search_words, and those new to their namespace into search_vocabulary."""
    return f"""
    WITH added AS (
        INSERT INTO search_words (word, namespace, name, adapter_id)
        SELECT DISTINCT m[1], c.namespace, c.name, c.id
        FROM {source}, regexp_matches(c.search_text, '{WORD}', 'g') AS m
        WHERE length(m[1]) >= {MIN_LENGTH}
        RETURNING word, namespace
    )
    INSERT INTO search_vocabulary (namespace, word)
    SELECT DISTINCT a.namespace, a.word FROM added AS a
    WHERE NOT EXISTS (
        SELECT 1 FROM search_vocabulary AS v WHERE v.namespace = a.namespace AND v.word = a.word
    )
    """


_NEW_ROW = (
    "(SELECT NEW.id AS id, NEW.namespace AS namespace, NEW.name AS name, NEW.search_text AS search_text) AS c"
)
PG_FUNCTIONS = {
    "search_words_insert": f"""
CREATE FUNCTION search_words_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_add_words("inserted AS c")};
    RETURN NULL;
END $$
""",
    "search_words_update": f"""
CREATE FUNCTION search_words_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_words WHERE adapter_id = NEW.id;
    {_add_words(_NEW_ROW)};
    RETURN NULL;
END $$
""",
}
PG_TRIGGERS = {
    "adapters_search_words_insert": (
        "AFTER INSERT ON adapters REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
        "EXECUTE FUNCTION search_words_insert()"
    ),
    # Every version registered updates its adapter's row (migration 0015's columns): the WHEN test keeps
    # those from running any function.
    "adapters_search_words_update": (
        "AFTER UPDATE ON adapters FOR EACH ROW "
        "WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text "
        "OR OLD.namespace IS DISTINCT FROM NEW.namespace OR OLD.name IS DISTINCT FROM NEW.name) "
        "EXECUTE FUNCTION search_words_update()"
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE search_words ("
        " word TEXT NOT NULL, namespace VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL,"
        " adapter_id BIGINT NOT NULL,"
        " CONSTRAINT fk_search_words_adapter_id_adapters FOREIGN KEY (adapter_id) REFERENCES adapters (id)"
        " ON DELETE CASCADE,"
        " CONSTRAINT pk_search_words PRIMARY KEY (word, namespace, name) INCLUDE (adapter_id))"
    )
    op.execute("CREATE INDEX ix_search_words_adapter_id ON search_words (adapter_id)")
    op.execute("CREATE TABLE search_vocabulary (namespace VARCHAR(64) NOT NULL, word TEXT NOT NULL)")
    op.execute("CREATE INDEX ix_search_vocabulary_namespace_word ON search_vocabulary (namespace, word)")
    op.execute(
        "CREATE INDEX ix_search_vocabulary_word ON search_vocabulary "
        "USING gin (word gin_trgm_ops) WITH (fastupdate = off)"
    )
    for body in PG_FUNCTIONS.values():
        op.execute(body)
    for name, definition in PG_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {definition}")
    # In id ranges: each statement well within the client's statement bound on a large catalog.
    last = op.get_bind().exec_driver_sql("SELECT coalesce(max(id), 0) FROM adapters").scalar()
    for low in range(0, int(last or 0) + 1, BACKFILL_IDS):
        source = (
            "(SELECT id, namespace, name, search_text FROM adapters "
            f"WHERE id >= {low} AND id < {low + BACKFILL_IDS}) AS c"
        )
        op.execute(_add_words(source))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON adapters")
    for name in PG_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP TABLE IF EXISTS search_vocabulary")
    op.execute("DROP TABLE IF EXISTS search_words")
