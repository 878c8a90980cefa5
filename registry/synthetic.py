"""Tiny transformers models built from config and adapters made by peft itself on them.

Used by `pemreg demo` and the tests: no hub access. Every adapter factory returns the folder written by
`save_pretrained`, with random non-zero weights so that arithmetic on them is observable (peft
initialises LoRA B and (IA)3 vectors to no-op values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from peft import IA3Config, LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

Arch = Literal["gpt2", "llama"]

BASE_NAME = {"gpt2": "tiny-gpt2", "llama": "tiny-llama"}
LORA_TARGETS = {"gpt2": ["c_attn", "c_proj"], "llama": ["q_proj", "k_proj", "v_proj", "o_proj"]}
IA3_TARGETS = {
    "gpt2": (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    "llama": (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
}


def tiny_model(arch: Arch = "llama", seed: int = 0) -> PreTrainedModel:
    torch.manual_seed(seed)
    model: PreTrainedModel
    if arch == "gpt2":
        gpt2_cfg = GPT2Config(
            n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=128, bos_token_id=0, eos_token_id=0
        )
        model = GPT2LMHeadModel(gpt2_cfg)
    else:
        llama_cfg = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=128,
            max_position_embeddings=64,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = LlamaForCausalLM(llama_cfg)
    model.name_or_path = BASE_NAME[arch]
    return model.eval()


def save_tiny_base(dest: Path, arch: Arch = "llama", seed: int = 0) -> Path:
    """A saved HF model folder (safetensors) usable as a base model `source`."""
    tiny_model(arch, seed).save_pretrained(dest)
    return dest


def _randomize(model: torch.nn.Module, seed: int, keys: tuple[str, ...], around_one: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(k in name for k in keys):
                noise = torch.randn(param.shape, generator=gen) * 0.1
                param.copy_((1.0 + noise) if around_one else noise)


def make_lora(
    dest: Path,
    *,
    arch: Arch = "llama",
    seed: int = 1,
    r: int = 4,
    alpha: int = 8,
    targets: list[str] | None = None,
    use_rslora: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Path:
    model = tiny_model(arch)
    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=targets or LORA_TARGETS[arch],
        use_rslora=use_rslora,
        lora_dropout=0.0,
        fan_in_fan_out=(arch == "gpt2"),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, cfg)
    _randomize(peft_model, seed, ("lora_A", "lora_B"), around_one=False)
    if dtype != torch.float32:
        peft_model = peft_model.to(dtype)
    peft_model.save_pretrained(str(dest), save_embedding_layers=False)
    return dest


def make_ia3(
    dest: Path, *, arch: Arch = "llama", seed: int = 2, targets: tuple[list[str], list[str]] | None = None
) -> Path:
    model = tiny_model(arch)
    target_modules, ff_modules = targets or IA3_TARGETS[arch]
    cfg = IA3Config(
        target_modules=target_modules,
        feedforward_modules=ff_modules,
        fan_in_fan_out=(arch == "gpt2"),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, cfg)
    _randomize(peft_model, seed, ("ia3_l",), around_one=True)
    peft_model.save_pretrained(str(dest), save_embedding_layers=False)
    return dest
