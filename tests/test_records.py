"""registry.catalog.records: rows as named tuples read the same values by the same names as the Rows."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from registry.catalog.records import records


def test_records_read_what_the_rows_read() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as db:
        query = text(
            "SELECT 1 AS id, 'a' AS name, NULL AS task, 2.5 AS weight UNION ALL SELECT 2, 'b', 't', 0"
        )
        rows = db.execute(query).all()
        got = records(db.execute(query))
    assert [tuple(r) for r in got] == [tuple(r) for r in rows]
    assert [(r.id, r.name, r.task, r.weight) for r in got] == [(r.id, r.name, r.task, r.weight) for r in rows]
    id_, name, task, weight = got[0]  # unpacks positionally too
    assert (id_, name, task, weight) == (1, "a", None, 2.5)


def test_a_shared_column_name_reads_as_on_a_row() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as db:
        query = text("SELECT 1 AS name, 2 AS name")
        row = db.execute(query).one()
        got = records(db.execute(query))
    assert got == [row] and got[0].name == row.name
