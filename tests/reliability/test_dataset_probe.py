"""A REST caller probing the server's disk through `evaluate.dataset`: everything outside the artifact
store and the source roots (PEMREG_SOURCE_ROOTS, and PEMREG_DATASET_ROOTS folded in) is refused with one
message, whether or not the file exists or is JSON; the CLI (the local user) reads local files as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.errors import InvalidInput
from registry.evaluation.datasets import load_dataset
from registry.settings import Settings
from registry.sources import SourceAccess

ROWS = '{"text": "a b c"}\n{"text": "d e"}\n'


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    store, allowed, outside = tmp_path / "store", tmp_path / "allowed", tmp_path / "outside"
    for folder in (store, allowed, outside):
        folder.mkdir()
    (store / "in-store.jsonl").write_text(ROWS)
    (allowed / "ok.jsonl").write_text(ROWS)
    (outside / "secret.jsonl").write_text(ROWS)
    (allowed / "link.jsonl").symlink_to(outside / "secret.jsonl")  # a way out of a root
    return {"store": store, "allowed": allowed, "outside": outside}


def _remote(layout: dict[str, Path]) -> SourceAccess:
    settings = Settings(
        home=layout["store"].parent / "home",
        artifact_store=layout["store"].as_uri(),
        source_roots=str(layout["allowed"]),
        dataset_roots="s3://datasets/public",  # the older setting, still read
    )
    return SourceAccess.for_principal(settings, "key")


def _refusal(access: SourceAccess, uri: str) -> str:
    with pytest.raises(InvalidInput) as info:
        load_dataset(uri, "perplexity", None, access)
    assert info.value.field == "dataset"
    return str(info.value).replace(repr(uri[:200]), "<uri>")


def test_remote_caller_probes_all_get_one_message(layout: dict[str, Path]) -> None:
    access = _remote(layout)
    outside = layout["outside"]
    probes = [
        "file:///etc/passwd",  # exists, not JSON
        "/etc/passwd",
        "file:///etc/does-not-exist.jsonl",  # does not exist
        "~root/.bashrc",
        "~/x.jsonl",
        "data.jsonl",  # relative to the server's working directory
        (outside / "secret.jsonl").as_uri(),  # exists and is valid JSONL
        f"file://{layout['allowed']}/../outside/secret.jsonl",
        f"file://{layout['allowed']}/%2e%2e/outside/secret.jsonl",
        (layout["allowed"] / "link.jsonl").as_uri(),
        "file://otherhost/etc/passwd",
        "s3://other-bucket/data.jsonl",
        "s3://datasets/public/../private/x.jsonl",
        "s3://datasets/publicity.jsonl",  # a prefix of the root's name is not inside it
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd\n",
    ]
    messages = {_refusal(access, uri) for uri in probes}
    print(f"dataset probes: {len(probes)}, distinct messages: {len(messages)}")
    assert len(messages) == 1, messages
    assert "allowed source root" in messages.pop()


def test_remote_caller_reads_store_and_allowed_roots(layout: dict[str, Path]) -> None:
    access = _remote(layout)
    for uri in ((layout["store"] / "in-store.jsonl").as_uri(), str(layout["allowed"] / "ok.jsonl")):
        assert len(load_dataset(uri, "perplexity", None, access).rows) == 2
    access.check_each(["s3://datasets/public/x.jsonl", (layout["allowed"] / "ok.jsonl").as_uri()], "evaluate")
    with pytest.raises(InvalidInput) as info:
        access.check_each(["s3://datasets/public/x.jsonl", "file:///etc/passwd"], "evaluate")
    assert info.value.field == "evaluate[1]"


def test_local_user_reads_local_files(layout: dict[str, Path]) -> None:
    settings = Settings(home=layout["store"].parent / "home")
    access = SourceAccess.for_principal(settings, "local")
    secret = layout["outside"] / "secret.jsonl"
    assert load_dataset(secret.as_uri(), "perplexity", None, access).rows[0]["text"] == "a b c"
    assert load_dataset(str(secret), "perplexity", None).rows[1]["text"] == "d e"  # default: local user
