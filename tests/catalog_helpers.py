"""Counting what the catalog and the store hold, to prove a failed operation changed nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from registry.catalog.models import POSTGRES_ONLY_TABLES, Base
from registry.service import Registry


def snapshot(reg: Registry) -> tuple[dict[str, int], list[str]]:
    with reg.sessions() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        rows = {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
            if postgres or t.name not in POSTGRES_ONLY_TABLES
        }
    return rows, sorted(reg.store.list_keys(""))


def register_test_bases(reg: Registry) -> None:
    """The synthetic adapters' base models (`tiny-llama`, `tiny-gpt2`), registered by hub-id name as
    a REST server's operator would: REST never registers a base model on the way. A base the test
    registered already (from a folder, say) is kept."""
    from registry.service.registration.base_models import add_base_model, find_base_model
    from registry.synthetic import BASE_NAME

    for name in BASE_NAME.values():
        with reg.sessions() as session:
            if find_base_model(session, name) is not None:
                continue
        add_base_model(reg, name, source=name, local=False)
