"""Pilot for the real demo's domain-transfer task: which candidate depends on the domain?

Claim, stated before the run: a usable transfer task's prose-trained LoRA is at least ~10 points less
accurate on code test items than on prose test items (c = 0: the adapter alone), with the 95% interval
of that gap (two independent proportions of 100 items) above 0, and it learns the rule on prose (above
the base beyond noise). Only then does `+ c (LM_code - LM_prose)` have a gap to close.

For each candidate (`tone`, line_rules.LINE_RULES): its items in prose and code
(line_rules.candidate_sets, the demo's splits), one LoRA trained on the prose items with the demo's
trainer (LoRA r 8, top 10 layers, batch 4 x 128 tokens), scored with the product's `accuracy` metric
(Evaluator) on both domains' test and validation items, beside the base.

    nice -n 5 env PYTHONPATH=$PWD .venv/bin/python benchmarks/demo_real_transfer_pilot.py \\
        --models /path/to/cache/demo-real/models --work /tmp/pilot --steps 30 --precision bf16

Prints a Markdown table, each training's CPU and wall time, and the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from pathlib import Path

import torch

from benchmarks import demo_real_line_rules as line_rules
from registry.demo.real import corpora, data, model, plan, tasks, train
from registry.evaluation import EvalRequest, Evaluator, load_dataset


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def gap_interval(p1: float, p2: float, n1: int, n2: int) -> tuple[float, float]:
    """95% Wald interval of p1 - p2 for independent proportions."""
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2 - 1.96 * se, p1 - p2 + 1.96 * se


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rules", default=",".join(("tone", *line_rules.LINE_RULES)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    base = model.convert(args.models)
    tok = AutoTokenizer.from_pretrained(base.folder)
    budget = plan.FULL
    work: Path = args.work
    evaluator = Evaluator(base.folder)

    def parts(domain: str) -> corpora.Split:
        return corpora.split(
            domain, budget.n_test, budget.n_val, args.seed, lambda d: data.window(tok, d, budget.window)
        )

    source_parts, target_parts = parts("prose"), parts("code")
    rows: dict[str, dict[str, float]] = {}
    trainings: dict[str, dict[str, float]] = {}
    for rule in args.rules.split(","):
        source, target = line_rules.candidate_sets(rule, source_parts, target_parts, args.seed)
        reqs = []
        for name, items in (
            ("prose.test", source.test),
            ("code.test", target.test),
            ("prose.val", source.val),
            ("code.val", target.val),
        ):
            path = tasks.write_accuracy(items, work / "data" / f"{rule}.{name}.jsonl")
            reqs.append(EvalRequest(name, "accuracy", load_dataset(str(path), "accuracy", None)))
        blocks = train.tokenise_blocks(
            tok, tasks.training_docs(source), budget.seq, budget.train_tokens, work / "tokens"
        )
        recipe = train.Recipe(
            base_sha256=base.weights_sha256,
            data_sha256=train.blocks_digest(blocks.tokens),
            kind="lora",
            steps=args.steps,
            batch=budget.batch,
            seq=budget.seq,
            lr=args.lr,
            seed=args.seed + 1,
            precision=args.precision,
            top_layers=budget.lora_layers,
        )
        c0, w0 = cpu_seconds(), time.monotonic()
        folder, hit = train.train_adapter(base.folder, blocks.tokens, recipe, work / "adapters")
        trainings[rule] = {
            "items": len(source.train),
            "blocks": len(blocks.tokens),
            "cpu_s": round(cpu_seconds() - c0, 1),
            "wall_s": round(time.monotonic() - w0, 1),
            "cached": float(hit),
            "load1": os.getloadavg()[0],
        }
        print(rule, trainings[rule], flush=True)
        for label, f in ((f"{rule} base", None), (f"{rule} prose-trained", folder)):
            rows[label] = evaluator.evaluate(f, reqs)
            print(label, rows[label], flush=True)
    (work / "pilot.json").write_text(json.dumps({"results": rows, "trainings": trainings}, indent=1))
    cols = ["prose.test", "code.test", "prose.val", "code.val"]
    print("\n| model | " + " | ".join(cols) + " | prose - code (test), 95% |")
    print("|---|" + "---|" * (len(cols) + 1))
    for label, r in rows.items():
        lo, hi = gap_interval(r["prose.test"], r["code.test"], 100, 100)
        gap = f"{(r['prose.test'] - r['code.test']) * 100:+.0f} [{lo * 100:+.0f}, {hi * 100:+.0f}]"
        print(f"| {label} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + f" | {gap} |")
    print("\n| training | items | blocks | CPU s | wall s | load1 |\n|---|---|---|---|---|---|")
    for name, t in trainings.items():
        print(f"| {name} | {t['items']} | {t['blocks']} | {t['cpu_s']} | {t['wall_s']} | {t['load1']:.2f} |")


if __name__ == "__main__":
    main()
