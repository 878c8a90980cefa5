"""Tokenised training blocks (cached) and LoRA / (IA)3 training with peft on the real base, cached by
the hash of the training recipe.

Training runs in the precision `compute.fastest` measured best on this CPU (bf16 autocast where the CPU
has native bf16, else fp32; the adapter's own parameters stay fp32), recorded in the recipe. Every
LoRA starts from the same `lora_A` initialisation (one seed), as in Zhang et al. 2023, so factor-wise
`linear` merges add like-for-like directions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .compute import autocast, threads
from .corpora import Doc

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IA3_TARGETS = ("k_proj", "v_proj", "down_proj")  # peft's default for Llama
IA3_FEEDFORWARD = ("down_proj",)
LORA_INIT_SEED = 7
DOC_TOKENS = 2048  # one document's share of a training set at most (corpora.DOC_CHARS is about this)
RECIPE_VERSION = 1  # bump when the loop below changes what it produces

Tick = Callable[[int], None]


@dataclass(frozen=True)
class Recipe:
    """Everything that determines an adapter's bytes; its hash keys the adapter cache."""

    base_sha256: str
    data_sha256: str  # of the tokenised training blocks
    kind: str  # lora | ia3
    steps: int
    batch: int
    seq: int
    lr: float
    seed: int
    r: int = 8
    alpha: int = 16
    precision: str = "fp32"  # compute.PRECISIONS
    top_layers: int | None = None  # LoRA on the model's top N layers only (peft layers_to_transform)
    # torch threads: another count sums in another order, and in bf16 that changes the trained bytes.
    threads: int = 1

    def key(self) -> str:
        blob = json.dumps({**asdict(self), **_CODE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def _code() -> dict[str, object]:
    """What the bytes depend on besides the recipe's fields: the loop (RECIPE_VERSION), the libraries that
    run it, and the modules and initialisation it trains."""
    from importlib.metadata import version

    return {
        "v": RECIPE_VERSION,
        "torch": torch.__version__,
        "peft": version("peft"),
        "transformers": version("transformers"),
        "modules": [LORA_TARGETS, IA3_TARGETS, IA3_FEEDFORWARD, LORA_INIT_SEED],
    }


_CODE = _code()


@dataclass(frozen=True)
class Blocks:
    tokens: torch.Tensor  # (N, seq)
    files: int  # documents that contributed tokens


def tokenise_blocks(tok: object, docs: list[Doc], seq: int, max_tokens: int, cache: Path) -> Blocks:
    """Documents -> one stream (each capped at DOC_TOKENS, EOS between documents) -> (N, seq) blocks;
    cached as safetensors."""
    from safetensors.torch import load_file, save_file

    h = hashlib.sha256(f"{seq}\0{max_tokens}\0{DOC_TOKENS}\0{getattr(tok, 'name_or_path', '')}".encode())
    for doc in docs:
        h.update(doc.id.encode() + b"\0" + hashlib.sha256(doc.text.encode()).digest())
    path = cache / f"blocks-{h.hexdigest()[:24]}.safetensors"
    if path.is_file():
        saved = load_file(path)
        return Blocks(saved["blocks"], int(saved["files"].item()))
    eos = int(tok.eos_token_id)  # type: ignore[attr-defined]
    stream: list[int] = []
    files = 0
    for doc in docs:
        if len(stream) >= max_tokens:
            break
        ids = tok(doc.text, add_special_tokens=False)["input_ids"][:DOC_TOKENS]  # type: ignore[operator]
        stream += ids + [eos]
        files += 1
    n = min(len(stream), max_tokens) // seq
    blocks = torch.tensor(stream[: n * seq], dtype=torch.long).view(n, seq)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    save_file({"blocks": blocks, "files": torch.tensor(files)}, str(tmp))
    tmp.rename(path)
    return Blocks(blocks, files)


def blocks_digest(blocks: torch.Tensor) -> str:
    return hashlib.sha256(blocks.numpy().tobytes()).hexdigest()


def train_adapter(
    base_folder: Path, blocks: torch.Tensor, recipe: Recipe, cache: Path, tick: Tick | None = None
) -> tuple[Path, bool]:
    """The adapter folder for `recipe` (trained now, or found in the cache). Returns (folder, cached)."""
    folder = cache / recipe.key()[:24]
    if (folder / "adapter_model.safetensors").is_file():
        if tick:
            tick(recipe.steps)
        return folder, True
    from peft import IA3Config, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_folder)
    if recipe.kind == "lora":
        n_layers = int(model.config.num_hidden_layers)
        top = min(recipe.top_layers or n_layers, n_layers)
        cfg: LoraConfig | IA3Config = LoraConfig(
            r=recipe.r,
            lora_alpha=recipe.alpha,
            target_modules=list(LORA_TARGETS),
            layers_to_transform=list(range(n_layers - top, n_layers)) if top < n_layers else None,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(LORA_INIT_SEED)  # the same lora_A for every LoRA
    else:
        cfg = IA3Config(
            target_modules=list(IA3_TARGETS),
            feedforward_modules=list(IA3_FEEDFORWARD),
            task_type="CAUSAL_LM",
        )
    peft_model = get_peft_model(model, cfg)
    with threads(recipe.threads):
        _loop(peft_model, blocks, recipe, tick)
    # A folder of this process's own, then one rename: a reader of the cache (another run of the same
    # recipe) sees the whole folder or none, and two runs that trained it at once keep the first one's.
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    peft_model.save_pretrained(str(tmp))
    (tmp / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
    try:
        tmp.rename(folder)
    except OSError:  # the folder exists: another run's whole result, or a leftover without weights
        if (folder / "adapter_model.safetensors").is_file():
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(folder)
            tmp.rename(folder)
    return folder, False


def _loop(model: torch.nn.Module, blocks: torch.Tensor, recipe: Recipe, tick: Tick | None) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.steps, pct_start=0.1
    )
    model.train()
    for _ in range(recipe.steps):
        x = blocks[torch.randint(0, len(blocks), (recipe.batch,), generator=gen)]
        with autocast(recipe.precision):
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if tick:
            tick(1)
    model.eval()
