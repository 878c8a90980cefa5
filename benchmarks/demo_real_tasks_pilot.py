"""Pilot for the real demo's generated tasks (registry/demo/real/tasks.py): can the settings show anything?

Trains one LoRA per task with the demo's own trainer (train.train_adapter, the demo's recipe: r 8, top
10 layers, lr 2e-3, batch 4 x 128 tokens) and scores with the product's `accuracy` metric (Evaluator):

- multi-task: base, the kind adapter, the mood adapter and their 0.5/0.5 and 1/1 merges by `linear`
  (factor-wise: with the shared lora_A, 0.5/0.5 carries about a quarter of each delta) and by
  `delta_cat` (the exact weighted sum), composed by registry.compose, written with the PEFT writer and
  evaluated as adapter folders, on both tasks' test and validation items;
- domain transfer: base, the transfer task's adapter (plan.TRANSFER_TASK) trained on prose items and
  an oracle trained on code items, on prose and code test items (the candidates' pilot:
  benchmarks/demo_real_transfer_pilot.py).

    nice -n 5 env PYTHONPATH=$PWD .venv/bin/python benchmarks/demo_real_tasks_pilot.py \\
        --models /path/to/cache/demo-real/models --work /tmp/pilot --steps 30

The model folder is only read (converted there already, or converted on first use). Prints a Markdown
table, with each training's CPU time (user + sys) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch

from registry.compose import compose
from registry.demo.real import corpora, data, model, plan, tasks, train
from registry.evaluation import EvalRequest, Evaluator, load_dataset
from registry.pem import read_adapter, write_adapter


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def check_labels(tok: object) -> None:
    """Each label one token alone and after a space; labels disjoint across tasks."""
    seen: set[str] = set()
    # the line rules share their labels, and `tone` has mood's (tasks.LABELS)
    for task, labels in {v: k for k, v in tasks.LABELS.items()}.items():
        for label in task:
            for form in (label, " " + label):
                n = len(tok(form, add_special_tokens=False)["input_ids"])  # type: ignore[operator]
                assert n == 1, f"{labels} label {form!r} is {n} tokens"
            assert label not in seen, label
            seen.add(label)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=("all", "multitask", "transfer"), default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    base = model.convert(args.models)
    tok = AutoTokenizer.from_pretrained(base.folder)
    check_labels(tok)
    budget = plan.FULL
    work: Path = args.work
    results: dict[str, dict[str, float]] = {}
    trainings: dict[str, dict[str, float]] = {}

    def fit(name: str, task: tasks.TaskSet) -> Path:
        docs = tasks.training_docs(task)
        blocks = train.tokenise_blocks(tok, docs, budget.seq, budget.train_tokens, work / "tokens")
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
        trainings[name] = {
            "steps": args.steps,
            "blocks": len(blocks.tokens),
            "cpu_s": round(cpu_seconds() - c0, 1),
            "wall_s": round(time.monotonic() - w0, 1),
            "cached": float(hit),
            "load1": os.getloadavg()[0],
        }
        print(name, trainings[name], flush=True)
        return folder

    def request(name: str, items: tuple[tasks.TaskItem, ...]) -> EvalRequest:
        path = tasks.write_accuracy(items, work / "data" / f"{name}.jsonl")
        return EvalRequest(name, "accuracy", load_dataset(str(path), "accuracy", None))

    evaluator = Evaluator(base.folder)
    if args.only in ("all", "multitask"):
        kind, mood = tasks.multitask_sets(args.seed)
        reqs = [request("kind.test", kind.test), request("mood.test", mood.test)]
        reqs += [request("kind.val", kind.val), request("mood.val", mood.val)]
        fa, fb = fit("kind", kind), fit("mood", mood)
        pair = [read_adapter(fa), read_adapter(fb)]
        merged = {
            f"{m} {w}/{w}": write_adapter(compose(pair, [w, w], m).adapter, work / f"merged-{m}-{w}")
            for m in ("linear", "delta_cat")
            for w in (0.5, 1.0)
        }
        for label, folder in [("base", None), ("kind", fa), ("mood", fb), *merged.items()]:
            results[label] = evaluator.evaluate(folder, reqs)
            print(label, results[label], flush=True)
    if args.only in ("all", "transfer"):

        def parts(domain: str) -> corpora.Split:
            return corpora.split(
                domain,
                budget.n_test,
                budget.n_val,
                args.seed,
                lambda d: data.window(tok, d, budget.window),
            )

        rule = plan.TRANSFER_TASK
        source, target = tasks.transfer_sets(parts("prose"), parts("code"), args.seed, n_train_target=3000)
        reqs = [
            request(f"{rule}.prose.test", source.test),
            request(f"{rule}.code.test", target.test),
            request(f"{rule}.prose.val", source.val),
            request(f"{rule}.code.val", target.val),
        ]
        fs = fit(f"{rule}-prose", source)
        ft = fit(f"{rule}-code (oracle)", target)
        for label, folder in (("base", None), (f"{rule}-prose", fs), (f"{rule}-code (oracle)", ft)):
            results.setdefault(label, {}).update(evaluator.evaluate(folder, reqs))
            print(label, results[label], flush=True)
    out = work / "pilot.json"
    out.write_text(json.dumps({"results": results, "trainings": trainings}, indent=1))
    cols = sorted({k for r in results.values() for k in r})
    print("\n| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(f"{r[c]:.2f}" if c in r else "" for c in cols) + " |")
    print("\n| training | steps | blocks | CPU s | wall s | load1 |\n|---|---|---|---|---|---|")
    for name, t in trainings.items():
        print(f"| {name} | {t['steps']} | {t['blocks']} | {t['cpu_s']} | {t['wall_s']} | {t['load1']:.2f} |")


if __name__ == "__main__":
    main()
