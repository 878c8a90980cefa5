"""The compose flow's evaluator cache under parallel search-candidate threads: one model load, shared.

Found by `pemreg demo --real`: when the first evaluation of a process was a lambda search, its two
candidate threads both loaded the base at once and one failed ("Cannot copy out of meta tensor")."""

from __future__ import annotations

import threading
from pathlib import Path

from transformers import GPT2Config, GPT2LMHeadModel

from flows import tasks


def test_parallel_first_calls_load_the_base_once(tmp_path: Path) -> None:
    GPT2LMHeadModel(
        GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=32, vocab_size=128)
    ).save_pretrained(tmp_path)
    tasks._load_evaluator.cache_clear()
    start = threading.Barrier(4)
    got: list[object] = []
    errors: list[BaseException] = []

    def call() -> None:
        start.wait()
        try:
            got.append(tasks._evaluator(str(tmp_path)))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(got) == 4 and all(e is got[0] for e in got)
    assert tasks._load_evaluator.cache_info().misses == 1
    tasks._load_evaluator.cache_clear()
