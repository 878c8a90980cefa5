"""Plain torch training loops on CPU: the tiny base model, LoRA and (IA)3 adapters on the demo domains.

Bytes are tokens (the evaluator's byte tokenizer reads the same ids), so no tokenizer is saved.
Adapters are trained on *content*: the loss counts only the value characters of each `key=value`
pair (the facts); the base already predicts the format. Every LoRA starts from the same
initialisation (same seed for `lora_A`), as in Zhang et al., so factor-wise arithmetic (`linear`)
adds like-for-like directions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import GPT2Config, GPT2LMHeadModel

if TYPE_CHECKING:
    from peft import PeftMixedModel, PeftModel

SEQ = 32
LORA_INIT_SEED = 7
ANCHOR_WEIGHT = 3.0  # measured: a heavier anchor keeps a negated adapter off the other domains
LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]
IA3_TARGETS = (["c_attn", "mlp.c_proj"], ["mlp.c_proj"])

Tick = Callable[[int], None]


def base_config() -> GPT2Config:
    return GPT2Config(
        n_embd=96,
        n_layer=2,
        n_head=4,
        n_positions=SEQ,
        vocab_size=128,
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def encode(lines: list[str], content_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (N, SEQ) zero-padded, and the loss mask over *predicted* positions (N, SEQ - 1)."""
    ids = torch.zeros(len(lines), SEQ, dtype=torch.long)
    mask = torch.zeros(len(lines), SEQ - 1)
    for i, line in enumerate(lines):
        b = list(line.encode("ascii"))[:SEQ]
        ids[i, : len(b)] = torch.tensor(b)
        if content_only:
            for j, ch in enumerate(line[:SEQ]):
                if ch == "=":
                    for t in range(j + 1, min(j + 4, len(b))):
                        mask[i, t - 1] = 1.0  # target position t is predicted at t-1
        else:
            mask[i, : len(b) - 1] = 1.0
    return ids, mask


def _loop(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    lines: list[str],
    *,
    steps: int,
    lr: float,
    batch: int,
    seed: int,
    content_only: bool,
    tick: Tick | None,
    anchor: list[str] | None = None,
) -> float:
    ids, mask = encode(lines, content_only)
    anchor_data = encode(anchor, False) if anchor else None
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    loss_value = float("nan")
    for _ in range(steps):
        idx = torch.randint(0, len(lines), (batch,), generator=gen)
        x, m = ids[idx], mask[idx]
        logits = model(input_ids=x).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none"
        ).view(m.shape)
        loss = (nll * m).sum() / m.sum()
        if anchor_data is not None:
            loss = loss + ANCHOR_WEIGHT * _anchor_kl(model, *anchor_data, gen, max(1, batch // 2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = loss.item()
        if tick:
            tick(1)
    model.eval()
    return loss_value


def _anchor_kl(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, batch: int
) -> torch.Tensor:
    """KL(base || base + adapter) on generic lines: the adapter is asked to change nothing there."""
    from peft import PeftMixedModel, PeftModel

    if not isinstance(model, PeftModel | PeftMixedModel):
        raise TypeError("the anchor term needs a PEFT model: it compares against the adapter disabled")
    idx = torch.randint(0, len(ids), (batch,), generator=gen)
    x, m = ids[idx], mask[idx]
    with torch.no_grad(), model.disable_adapter():
        ref = torch.log_softmax(model(input_ids=x).logits[:, :-1], dim=-1)
    logp = torch.log_softmax(model(input_ids=x).logits[:, :-1], dim=-1)
    kl = (ref.exp() * (ref - logp)).sum(-1)
    return (kl * m).sum() / m.sum()


def pretrain_base(
    lines: list[str], dest: Path, *, steps: int, seed: int = 0, tick: Tick | None = None
) -> float:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(base_config())
    loss = _loop(
        model,
        list(model.parameters()),
        lines,
        steps=steps,
        lr=3e-3,
        batch=64,
        seed=seed,
        content_only=False,
        tick=tick,
    )
    model.save_pretrained(dest)
    return loss


def train_lora(
    base_folder: Path,
    lines: list[str],
    dest: Path,
    *,
    steps: int,
    seed: int,
    r: int = 8,
    alpha: int = 16,
    lr: float = 3e-3,
    anchor: list[str] | None = None,
    tick: Tick | None = None,
) -> float:
    from peft import LoraConfig, get_peft_model

    model = GPT2LMHeadModel.from_pretrained(base_folder)
    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=LORA_TARGETS,
        lora_dropout=0.0,
        fan_in_fan_out=True,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(LORA_INIT_SEED)  # same lora_A init for every adapter
    peft_model = get_peft_model(model, cfg)
    return _train_adapter(peft_model, lines, dest, steps=steps, lr=lr, seed=seed, tick=tick, anchor=anchor)


def _train_adapter(
    peft_model: PeftModel | PeftMixedModel,
    lines: list[str],
    dest: Path,
    *,
    steps: int,
    lr: float,
    seed: int,
    tick: Tick | None,
    anchor: list[str] | None,
) -> float:
    """Train the adapter's parameters (only they require grad) and save the PEFT folder."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    loss = _loop(
        peft_model,
        params,
        lines,
        steps=steps,
        lr=lr,
        batch=32,
        seed=seed,
        content_only=False,
        tick=tick,
        anchor=anchor,
    )
    peft_model.save_pretrained(str(dest), save_embedding_layers=False)
    return loss


def train_ia3(
    base_folder: Path,
    lines: list[str],
    dest: Path,
    *,
    steps: int,
    seed: int,
    lr: float = 3e-2,
    anchor: list[str] | None = None,
    tick: Tick | None = None,
) -> float:
    from peft import IA3Config, get_peft_model

    model = GPT2LMHeadModel.from_pretrained(base_folder)
    targets, ff = IA3_TARGETS
    cfg = IA3Config(
        target_modules=targets, feedforward_modules=ff, fan_in_fan_out=True, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, cfg)
    return _train_adapter(peft_model, lines, dest, steps=steps, lr=lr, seed=seed, tick=tick, anchor=anchor)
