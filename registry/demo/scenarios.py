"""The demo runner: build the domains, train and register, run the shipped specs, report.

Every composition is a spec file `examples/specs/demo-*.yaml` run by the real `compose` flow
(started with `registry.service.compositions.runs.start` through the `in-process` runner that `pemreg demo`
registers), so its result is registered with lineage and provenance, its metrics
come from the flow's evaluation, and the parents' metrics from the catalog's evaluations table.
The base model's own numbers come from the same `Evaluator` the flow uses.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import service
from ..hashing import sha256_file
from . import data as demo_data
from . import report as demo_report

NAMESPACE = "demo"
BASE_NAME = "tiny-gpt2-demo"
SPECS_DIR = Path(__file__).resolve().parents[2] / "examples" / "specs"


@dataclass(frozen=True)
class Budget:
    pretrain_steps: int
    lora_steps: int
    ia3_steps: int


FULL = Budget(pretrain_steps=400, lora_steps=160, ia3_steps=160)
QUICK = FULL  # same training, fewer adapters and scenarios: the quick numbers equal the full run's

# (adapter name, training set, kind)
ADAPTERS = [
    ("news", "news", "lora"),
    ("rumor", "rumor", "lora"),
    ("sports", "sports", "lora"),
    ("weather-a", "weather-a", "lora"),
    ("weather-b", "weather-b", "lora"),
    ("news-ia3", "news", "ia3"),
    ("sports-ia3", "sports", "ia3"),
]

# (scenario, spec file); the order is the order of the table.
SCENARIOS = [
    ("distribution generalization", "demo-weather-merge.yaml"),
    ("multi-tasking", "demo-news-sports-linear.yaml"),
    ("multi-tasking", "demo-news-sports-cat.yaml"),
    ("multi-tasking", "demo-news-sports-svd.yaml"),
    ("multi-tasking", "demo-news-rumor-cat.yaml"),
    ("multi-tasking", "demo-rumor-sports-cat.yaml"),
    ("unlearning", "demo-forget-sports.yaml"),
    ("analogy", "demo-analogy.yaml"),
    ("(IA)3 merge", "demo-ia3-news-sports.yaml"),
]
QUICK_SCENARIOS = {"demo-weather-merge.yaml", "demo-forget-sports.yaml"}
QUICK_ADAPTERS = {"weather-a", "weather-b", "sports"}
UNLEARN_GATE_SLACK = 0.05  # the unlearning gate: every other domain within 5% of the base


@dataclass
class Row:
    label: str  # what the table shows
    ref: str | None  # ns/name@N, None for the base model
    kind: str  # base | adapter | result
    scenario: str = ""
    detail: str = ""  # method and weights
    ppl: dict[str, float] = field(default_factory=dict)
    status: str = "succeeded"
    inputs: list[tuple[str, float]] = field(default_factory=list)  # (ns/name@N, weight) of a result


@dataclass
class DemoResult:
    out_dir: Path
    data_dir: Path
    base_ref: str  # name@revision
    base_folder: Path
    rows: list[Row]
    interference: list[dict[str, Any]]  # {a, b, rms_cosine, composition}
    lineage_root: str
    seconds: float
    report_path: Path
    plot_path: Path
    json_path: Path


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Tiny models on shared cores: one BLAS thread is several times faster than two (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _spec_text(path: Path, subst: dict[str, str]) -> str:
    text = path.read_text()
    for key, value in subst.items():
        text = text.replace("${" + key + "}", value)
    return text


def default_out_dir(home: Path, quick: bool) -> Path:
    """Where the report goes: a quick run has its own folder, so the full run's report stays."""
    return home / ("demo-quick" if quick else "demo")


def run_demo(
    reg: service.Registry,
    workdir: Path,
    say: Callable[[str], None],
    *,
    quick: bool = False,
    out_dir: Path | None = None,
    seed: int = 0,
) -> DemoResult:
    """Train, register, compose (through the flows), and report. `quick` trains 3 adapters and runs 2
    compositions (distribution generalization, unlearning), reporting to `demo-quick` so a full
    run's report and picture stay."""
    from . import train

    started = time.monotonic()
    budget = QUICK if quick else FULL
    out_dir = Path(out_dir or default_out_dir(reg.settings.home, quick))
    data_dir = out_dir / "data"
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)

    # 1. data: four domains, one shared vocabulary, a tag at the start of every line
    corpus = demo_data.generate(seed)
    for domain, lines in corpus.test.items():
        demo_data.write_jsonl(lines, data_dir / f"{domain}-test.jsonl")
    say(
        f"data: {len(corpus.domains)} domains ({', '.join(corpus.domains)}), "
        f"{len(corpus.pretrain)} pre-training lines, held-out sets in {data_dir}"
    )
    say("  e.g. " + "   ".join(lines[0] for lines in corpus.test.values()))

    with _threads(1), _progress() as progress:
        # 2. the base model, pre-trained on every domain's format with random values (no facts)
        task = progress.add_task("pre-train base model", total=budget.pretrain_steps)
        tmp_base = workdir / "base"
        train.pretrain_base(
            corpus.pretrain,
            tmp_base,
            steps=budget.pretrain_steps,
            seed=seed,
            tick=lambda n: progress.advance(task, n),
        )
        revision = sha256_file(tmp_base / "model.safetensors")[:12]
        base_folder = out_dir / "base" / revision  # stable: the catalog's `source` must stay readable
        if not (base_folder / "model.safetensors").exists():
            shutil.rmtree(base_folder, ignore_errors=True)
            shutil.copytree(tmp_base, base_folder)
        base, _ = service.add_base_model(
            reg, BASE_NAME, source=str(base_folder), revision=revision, architecture="GPT2LMHeadModel"
        )
        base_ref = f"{base.name}@{base.revision}"

        # 3. adapters, each trained on one training set, anchored to the base on generic lines
        wanted = ADAPTERS if not quick else [a for a in ADAPTERS if a[0] in QUICK_ADAPTERS]
        for name, train_set, kind in wanted:
            steps = budget.lora_steps if kind == "lora" else budget.ia3_steps
            task = progress.add_task(f"train {kind} {NAMESPACE}/{name}", total=steps)
            folder = workdir / name
            fn = train.train_lora if kind == "lora" else train.train_ia3
            tag = corpus.domains[train_set.split("-")[0]].tag
            fn(
                base_folder,
                corpus.train[train_set],
                folder,
                steps=steps,
                seed=seed + 1,
                anchor=[line for line in corpus.pretrain if not line.startswith(tag + ":")],
                tick=functools.partial(progress.advance, task),
            )
            service.register_adapter(
                reg,
                folder,
                f"{NAMESPACE}/{name}",
                base_model=base_ref,
                task=train_set,
                tags={"origin": "demo", "domain": train_set.split("-")[0], "pem": kind},
                description=f"{kind} trained on the {train_set} facts of the demo",
            )
    say(f"registered base model {base_ref} and {len(wanted)} adapters under {NAMESPACE}/")

    # 4. compositions from the shipped specs, each a real `compose` flow run
    from registry.service.compositions import runs

    from ..spec import load_spec

    base_metrics = _base_metrics(base_folder, data_dir, list(corpus.test))
    subst = {"DATA": data_dir.as_uri()}
    for domain, value in base_metrics.items():
        subst[f"MAX_{domain.upper()}"] = repr(round(value * (1 + UNLEARN_GATE_SLACK), 6))
    scenarios = [s for s in SCENARIOS if not quick or s[1] in QUICK_SCENARIOS]
    views = []
    with _threads(1), _progress() as progress:
        task = progress.add_task("compose (Prefect flows)", total=len(scenarios))
        for scenario, filename in scenarios:
            spec = load_spec(_spec_text(SPECS_DIR / filename, subst))
            progress.update(task, description=f"compose {spec.name}")
            view = runs.start(reg, spec, "cli", runner="in-process")
            views.append((scenario, filename, spec, view))
            progress.advance(task)
    for _scenario, filename, _spec, view in views:
        if view.status not in ("succeeded", "rejected"):
            raise RuntimeError(f"demo composition {filename} {view.status}: {view.error}")

    result = demo_report.collect(
        reg,
        base_ref,
        base_folder,
        base_metrics,
        views,
        list(corpus.test),
        out_dir,
        data_dir,
        time.monotonic() - started,
    )
    demo_report.emit(reg, result, say)
    return result


def _base_metrics(base_folder: Path, data_dir: Path, domains: list[str]) -> dict[str, float]:
    from ..evaluation import EvalRequest, Evaluator, load_dataset

    requests = [
        EvalRequest(d, "perplexity", load_dataset(str(data_dir / f"{d}-test.jsonl"), "perplexity", None))
        for d in domains
    ]
    return Evaluator(base_folder).evaluate(None, requests)
