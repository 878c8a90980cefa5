"""`pemreg demo --real`: the paper's settings on SmolLM2-135M, through the product, offline.

Phases (each with a Rich progress bar): convert the base model (cached) and register it with its
weights digest; build the corpora and held-out files; tokenise (cached); train the adapters with peft
(cached by recipe hash) and register them; evaluate the base; run every scenario's spec through
`run_spec` (the CLI passes the real `compose` flow runner: registry/ never imports flows/); generate
for the style rate; report.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from registry.service.compositions.reads import CompositionView

from ... import service
from ...spec import CompositionSpec, load_spec
from . import compute, corpora, data, plan, style, sweep, tasks, train
from . import model as real_model
from . import report as real_report

RunSpec = Callable[[service.Registry, CompositionSpec], CompositionView]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


@dataclass
class Prepared:
    base: real_model.RealBase
    base_ref: str
    held_out: list[data.HeldOut]
    val: dict[str, Path]
    train_sets: dict[str, Any]  # name -> blocks tensor
    sizes: dict[str, Any]  # domain -> corpora.Sizes as a dict, plus per training set its files and tokens
    items: list[data.HeldItem]  # the generated tasks' test items, one evaluation each
    tasks: dict[str, plan.TaskData]  # item set -> its evaluations and validation file (plan.scenarios)
    headers: list[str]  # the unlearning's generation prompts: the first tokens of held-out documents


def run_real_demo(
    reg: service.Registry,
    say: Callable[[str], None],
    run_spec: RunSpec,
    *,
    quick: bool = False,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    seed: int = 0,
) -> real_report.RealResult:
    started = time.monotonic()
    budget = plan.QUICK if quick else plan.FULL
    out_dir = Path(out_dir or reg.settings.home / ("demo-real-quick" if quick else "demo-real"))
    cache = Path(cache_dir or reg.settings.home / "cache" / "demo-real")
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = [a for a in plan.ADAPTERS if not quick or a.name in plan.QUICK_ADAPTERS]

    with _progress() as progress:
        task = progress.add_task("convert SmolLM2-135M (cached)", total=1)
        base = real_model.convert(cache / "models")
        progress.advance(task)
        row, _ = service.add_base_model(
            reg,
            real_model.BASE_NAME,
            source=str(base.folder),
            revision=base.revision,
            sha256=base.weights_sha256,
            architecture="LlamaForCausalLM",
        )
        base_ref = f"{row.name}@{row.revision}"
        prepared = _prepare(base, base_ref, budget, wanted, out_dir, cache, seed, progress)
    chosen = compute.fastest(base.folder)
    n_threads = chosen.threads
    say(
        f"base model {base_ref} (sha256 {base.weights_sha256[:16]}..., from GGUF sha256 "
        f"{base.gguf_sha256[:16]}...); {chosen.describe()}"
    )
    counts = {d: sum(h.domain == d for h in prepared.held_out) for d in corpora.DOMAINS}
    say(
        "held-out test documents per domain: "
        + ", ".join(f"{d} {n}" for d, n in counts.items())
        + f" ({budget.window} tokens each); validation documents {budget.n_val} per domain"
    )

    with _progress() as progress:  # each adapter trains on its recipe's threads (train.Recipe)
        trained = _train_all(reg, prepared, budget, wanted, cache, seed, progress, chosen)
    say("adapters: " + ", ".join(f"{name}{' (cached)' if hit else ''}" for name, hit in trained))

    from ...evaluation import EvalRequest, Evaluator, load_dataset

    requests = [
        EvalRequest(h.name, "perplexity", load_dataset(str(h.path), "perplexity", None))
        for h in prepared.held_out
    ]
    val_requests = [
        EvalRequest(f"val-{d}", "perplexity", load_dataset(str(p), "perplexity", None))
        for d, p in prepared.val.items()
    ]
    item_requests = [
        EvalRequest(h.name, "accuracy", load_dataset(str(h.path), "accuracy", None)) for h in prepared.items
    ]
    with compute.threads(n_threads), _progress() as progress:
        task = progress.add_task("evaluate the base model", total=1)
        evaluator = Evaluator(base.folder)
        base_metrics = evaluator.evaluate(None, requests + val_requests + item_requests)
        progress.advance(task)
    del evaluator
    base_val = {d: base_metrics[f"val-{d}"] for d in prepared.val}

    evaluate: dict[str, list[dict[str, str]]] = {}
    for h in prepared.held_out:
        evaluate.setdefault(h.domain, []).append(
            {"name": h.name, "metric": "perplexity", "dataset": h.path.as_uri()}
        )
    val_uris = {d: p.as_uri() for d, p in prepared.val.items()}
    x, y = plan.MAIN_PAIR
    pair_val = data.write_pooled(
        [prepared.val[d] for d in dict.fromkeys(plan.pair_domains(plan.DOMAIN_OF[x], plan.DOMAIN_OF[y]))],
        out_dir / "data" / "val" / f"{plan.pair_val_key(x, y)}.jsonl",
    )
    planned = plan.scenarios(
        quick, evaluate, val_uris, base_val, budget, prepared.tasks, pair_val=pair_val.as_uri()
    )
    specs_dir = out_dir / "specs"
    specs_dir.mkdir(exist_ok=True)
    views: list[tuple[str, CompositionSpec, CompositionView]] = []
    with compute.threads(n_threads), _progress() as progress:
        task = progress.add_task("compose (flows)", total=len(planned))
        for item in planned:
            path = specs_dir / (item.spec["name"].split("/", 1)[1] + ".yaml")
            path.write_text(yaml.safe_dump(item.spec, sort_keys=False))
            spec = load_spec(path)
            progress.update(task, description=f"compose {spec.name}")
            view = run_spec(reg, spec)
            if view.status not in ("succeeded", "rejected"):
                raise RuntimeError(f"real demo composition {spec.name} {view.status}: {view.error}")
            views.append((item.scenario, spec, view))
            progress.advance(task)

    with compute.threads(n_threads), _progress() as progress:
        composed = {f"{i.name}@{i.version}" for _, _, view in views for i in view.inputs}
        # The flows' registered compositions (name -> output and inputs): the sweep reads the pair
        # methods' results from them rather than composing the same engine result again.
        registered = {
            spec.name: (
                f"{view.output.name}@{view.output.version}",
                [f"{i.name}@{i.version}" for i in view.inputs],
            )
            for _, spec, view in views
            if view.status == "succeeded" and view.output is not None
        }
        controls, diagnostics, own_rows = _sweep(
            reg, prepared, wanted, quick, requests, composed, out_dir / "downloads", progress, registered
        )

    with compute.threads(n_threads), _progress() as progress:
        style_rows = _style(
            reg, prepared, views, budget, out_dir / "downloads", seed, progress, chosen.precision
        )

    result = real_report.collect(
        reg,
        base_ref,
        base.folder,
        base_metrics,
        prepared.held_out,
        prepared.items,
        views,
        style_rows,
        out_dir,
        time.monotonic() - started,
        threads=n_threads,
        precision=chosen.precision,
        quick=quick,
        sizes=prepared.sizes,
        controls=controls,
        diagnostics=diagnostics,
        evaluated=own_rows,
    )
    real_report.emit(reg, result, say)
    return result


def _prepare(
    base: real_model.RealBase,
    base_ref: str,
    budget: plan.Budget,
    wanted: list[plan.AdapterPlan],
    out_dir: Path,
    cache: Path,
    seed: int,
    progress: Progress,
) -> Prepared:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base.folder)
    task = progress.add_task("corpora, held-out files, tokenise", total=len(corpora.DOMAINS))
    held_out: list[data.HeldOut] = []
    val: dict[str, Path] = {}
    train_docs: dict[str, list[corpora.Doc]] = {}
    sizes: dict[str, Any] = {}
    domain_train: dict[str, list[corpora.Doc]] = {}
    splits: dict[str, corpora.Split] = {}
    for domain in corpora.DOMAINS:
        parts = corpora.split(
            domain, budget.n_test, budget.n_val, seed, lambda d: data.window(tok, d, budget.window)
        )
        sizes[domain] = asdict(parts.sizes) if parts.sizes else {}
        domain_train[domain] = parts.train
        held_out += data.write_test(tok, parts.test, budget.window, out_dir / "data" / "test")
        val[domain] = data.write_val(tok, domain, parts.val, budget.window, out_dir / "data" / "val")
        splits[domain] = parts
        if domain == "code":
            train_docs["code-a"], train_docs["code-b"] = corpora.subdistributions(parts.train)
        train_docs[domain] = parts.train  # code: the union reference's
        progress.advance(task)
    train_docs[plan.GENERIC] = corpora.interleave(list(domain_train.values()))
    items, task_data = _tasks(splits, budget, seed, out_dir / "data" / "tasks", train_docs)
    needed = {a.train_set for a in wanted}
    sets = {
        name: train.tokenise_blocks(tok, docs, budget.seq, budget.train_tokens, cache / "tokens")
        for name, docs in train_docs.items()
        if name in needed
    }
    sizes["training_sets"] = {
        name: {"files": blocks.files, "tokens": int(blocks.tokens.numel())} for name, blocks in sets.items()
    }
    (out_dir / "data" / "splits.json").write_text(
        json.dumps(
            {
                "test": [{"name": h.name, "source": h.doc_id, "tokens": h.tokens} for h in held_out],
                "train_files": {k: [d.id for d in v] for k, v in train_docs.items()},
                "sizes": sizes,
            },
            indent=1,
        )
    )
    return Prepared(
        base=base,
        base_ref=base_ref,
        held_out=held_out,
        val=val,
        train_sets={k: v.tokens for k, v in sets.items()},
        sizes=sizes,
        items=items,
        tasks=task_data,
        headers=[
            str(tok.decode(tok(d.text, add_special_tokens=False)["input_ids"][: budget.prompt_tokens]))
            for domain in style.HEADER_DOMAINS
            for d in splits[domain].test[: budget.prompts]
        ],
    )


def _tasks(
    splits: dict[str, corpora.Split],
    budget: plan.Budget,
    seed: int,
    folder: Path,
    train_docs: dict[str, list[corpora.Doc]],
) -> tuple[list[data.HeldItem], dict[str, plan.TaskData]]:
    """The generated tasks (tasks.py): the multi-task pair and the transfer task in its source and
    target domains. Writes one file per test item and one validation file per item set, and adds the
    task adapters' training documents to `train_docs` (`task-<name>`)."""
    n = {"n_test": budget.task_test, "n_val": budget.task_val}
    sets = list(tasks.multitask_sets(seed, **n))
    source, target = tasks.transfer_sets(
        splits[plan.TRANSFER_SOURCE], splits[plan.TRANSFER_TARGET], seed, **n
    )
    for ts in sets:
        train_docs[f"task-{ts.name}"] = tasks.training_docs(ts)
    train_docs[f"task-{source.name}"] = tasks.training_docs(source)  # the source domain's items only
    keyed = {ts.name: ts for ts in sets} | {
        plan.transfer_key(plan.TRANSFER_SOURCE): source,
        plan.transfer_key(plan.TRANSFER_TARGET): target,
    }
    items: list[data.HeldItem] = []
    out: dict[str, plan.TaskData] = {}
    for key, ts in keyed.items():
        held = data.write_items(key, ts.test, folder)
        items += held
        val = tasks.write_accuracy(ts.val, folder / f"val-{key}.jsonl")
        out[key] = plan.TaskData(
            test=[{"name": h.name, "metric": "accuracy", "dataset": h.path.as_uri()} for h in held],
            val=val.as_uri(),
        )
    return items, out


def _train_all(
    reg: service.Registry,
    prepared: Prepared,
    budget: plan.Budget,
    wanted: list[plan.AdapterPlan],
    cache: Path,
    seed: int,
    progress: Progress,
    chosen: compute.Compute,
) -> list[tuple[str, bool]]:
    out = []
    for a in wanted:
        blocks = prepared.train_sets[a.train_set]
        steps = (
            budget.ia3_steps
            if a.kind == "ia3"
            else budget.task_steps
            if a.domain == plan.TASK
            else budget.lora_steps
        )
        recipe = train.Recipe(
            base_sha256=prepared.base.weights_sha256,
            data_sha256=train.blocks_digest(blocks),
            kind=a.kind,
            steps=steps,
            batch=budget.batch,
            seq=budget.seq,
            lr=a.lr,
            seed=seed + 1 + a.seed,
            precision=chosen.precision,
            top_layers=budget.lora_layers if a.kind == "lora" else None,
            threads=chosen.threads,
        )
        task = progress.add_task(f"train {a.kind} {plan.ref(a.name)}", total=steps)
        folder, hit = train.train_adapter(
            prepared.base.folder,
            blocks,
            recipe,
            cache / "adapters",
            tick=functools.partial(progress.advance, task),
        )
        service.register_adapter(
            reg,
            folder,
            plan.ref(a.name),
            base_model=prepared.base_ref,
            task=a.train_set,
            tags={"origin": "demo-real", "domain": a.domain, "pem": a.kind, "recipe": recipe.key()[:16]},
            description=f"{a.kind} on SmolLM2-135M, trained on the {a.train_set} documents ({steps} steps"
            + (f", top {recipe.top_layers} layers)" if recipe.top_layers else ")"),
        )
        out.append((a.name, hit))
    return out


def _download(reg: service.Registry, ref: str, downloads: Path) -> tuple[str, Path]:
    """(name@version, folder) of a registered version, downloaded once into `downloads`."""
    version = service.get_version(reg, ref)
    label = f"{version.name}@{version.version}"
    folder = downloads / label.replace("/", "_").replace("@", "_")
    if not (folder / "adapter_config.json").is_file():
        service.download_version(reg, label, folder)
    return label, folder


def _sweep(
    reg: service.Registry,
    prepared: Prepared,
    wanted: list[plan.AdapterPlan],
    quick: bool,
    requests: list[Any],
    composed: set[str],
    downloads: Path,
    progress: Progress,
    registered: dict[str, tuple[str, list[str]]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Every pair of the registered LoRAs, in process (sweep.py): the controls on the pair's own
    domains, and the product's interference report of all of them (RMS cosine, subspace and core
    overlap per pair). Also the held-out perplexities (`requests`) on their own domain (`generic`: all)
    of the LoRAs no flow composition took as input (not in `composed`): their rows, which the flows'
    evaluations give the others. `registered`: the flows' compositions (spec name -> output, inputs);
    a pair method a flow composed from the same pair (plan.PAIR_METHODS: the same fields and weights,
    the same registered files, the engine is deterministic) is read from its registered output, not
    composed again (quick mode: `core_merge`, ~5 s of SVDs)."""
    from ...compose import interference_report
    from ...evaluation import Evaluator
    from ...evaluation.prefix import PrefixCache
    from ...pem import read_adapter

    pairs = plan.sweep_pairs(wanted, quick)
    task = progress.add_task("pair sweep (in process)", total=len(pairs) + 1)
    found = {
        a.name: _download(reg, f"{plan.ref(a.name)}@latest", downloads) for a in wanted if a.kind == "lora"
    }
    texts: dict[str, list[str]] = {}
    for h in prepared.held_out:
        texts.setdefault(h.domain, []).append(h.text)
    evaluator = Evaluator(prepared.base.folder)

    def own(name: str) -> list[Any]:
        d = plan.DOMAIN_OF[name]
        return [r for r in requests if d == plan.GENERIC or r.name.split(".")[0] == d]

    own_rows = {
        label: evaluator.evaluate(folder, own(n))
        for n, (label, folder) in found.items()
        if label not in composed
    }
    # One prefix cache for the whole sweep: each held-out document's base hidden states below the
    # LoRAs' first layer are computed once, and each input's top layers once per document
    # (registry/evaluation/prefix.py). The evaluator's own, which `own_rows` above already filled with
    # the same documents' prefixes (under its bound, eviction only costs a recomputation; the sweep's
    # named memos, 7 inputs x 120 documents of 64 x 576 floats, are ~120 MiB); a cache of the sweep's
    # own only when the setting turns the evaluator's off.
    cache = evaluator.prefix or PrefixCache(evaluator.base)
    controls = []
    tuned = plan.tune_pairs(quick)
    for x, y in pairs:
        (ref_x, fx), (ref_y, fy) = found[x], found[y]
        domains = list(dict.fromkeys(plan.pair_domains(plan.DOMAIN_OF[x], plan.DOMAIN_OF[y])))
        pair_texts = {d: texts[d] for d in domains}
        # the pair's validation windows pooled, as in its method search's dataset (data.write_pooled)
        tuning = (
            sweep.Tuning([t for d in domains for t in data.val_texts(prepared.val[d])], plan.TUNE_SCALES)
            if (x, y) in tuned
            else None
        )
        scales, decoding = plan.pair_controls(x, y, quick)
        done = sweep.pair_controls(
            evaluator, (ref_x, ref_y), (fx, fy), pair_texts, scales, decoding, cache=cache, tuning=tuning
        )
        if tuning is not None:  # every method claim's variants, each at its validation-chosen scale
            parents = (read_adapter(fx), read_adapter(fy))
            results = {}
            for pm in plan.tuned_methods(quick):
                output, inputs = (registered or {}).get(plan.ref(plan.pair_method_name(x, y, pm)), ("", []))
                if output and inputs == [ref_x, ref_y]:
                    results[pm.label] = read_adapter(_download(reg, output, downloads)[1])
            done += sweep.method_controls(
                evaluator,
                (ref_x, ref_y),
                parents,
                pair_texts,
                plan.tuned_methods(quick),
                tuning,
                cache=cache,
                results=results,
            )
        for c in done:
            item = {"pair": list(c.pair), "kind": c.kind, "weights": list(c.weights), "docs": c.docs}
            if c.kind == "tuned":
                item |= {"method": c.method, "fields": c.fields, "val": [list(v) for v in c.val]}
            controls.append(item)
        progress.advance(task)
    del evaluator
    names = [n for n in found if any(n in pair for pair in pairs)]
    report = interference_report(
        [read_adapter(found[n][1]) for n in names],
        names=[found[n][0] for n in names],
        core_density=plan.CORE_DENSITY,
    )
    diagnostics = [
        {
            "a": found[names[p.i]][0],
            "b": found[names[p.j]][0],
            "rms_cosine": p.rms_cosine,
            "subspace_overlap": p.subspace_overlap,
            "core_overlap": p.core_overlap,
        }
        for p in report.pairs
    ]
    progress.advance(task)
    return controls, diagnostics, own_rows


def _style(
    reg: service.Registry,
    prepared: Prepared,
    views: list[tuple[str, CompositionSpec, CompositionView]],
    budget: plan.Budget,
    downloads: Path,
    seed: int,
    progress: Progress,
    precision: str,
) -> list[dict[str, Any]]:
    """Generations from the headers of held-out documents (style.HEADER_DOMAINS): the base, the LoRA
    unlearned and the unlearning result, greedy and sampled; each scored by `style.licence_lines`."""
    prompts = prepared.headers
    forget = next((v for s, _, v in views if s == "unlearning" and v.output is not None), None)
    models: list[tuple[str, str | None]] = [("base", None), (f"{plan.ref(plan.UNLEARN)}@latest", None)]
    if forget is not None and forget.output is not None:
        models.append((f"{forget.output.name}@{forget.output.version}", None))
    task = progress.add_task("generate (licence boilerplate rate)", total=2 * len(models))
    generator = style.Generator(prepared.base.folder, precision)
    rows = []
    for label, _ in models:
        folder = None
        if label != "base":
            label, folder = _download(reg, label, downloads)
        for sample in (False, True):
            texts = generator.generate(
                folder, prompts, new_tokens=budget.new_tokens, sample=sample, seed=seed
            )
            rows.append(
                {
                    "model": label,
                    "decoding": "sampled" if sample else "greedy",
                    "counts": [list(style.licence_lines(t)) for t in texts],
                    "prompts": prompts,
                    "texts": texts,
                }
            )
            progress.advance(task)
    return rows
