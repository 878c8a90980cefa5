"""A tiny Llama built from config (4 layers, random weights, byte ids) and peft LoRAs on chosen layers:
the material of the prefix cache's tests (tests/test_demo_real_prefix.py, tests/test_evaluation_prefix.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

LAYERS = 4
TOP = [2, 3]  # the LoRAs' layers: the cache starts at layer 2
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TEXTS = {  # 20 documents of 7-61 bytes: two batches of metrics.BATCH, right-padded
    "code": [f"def f{i}(x):\n    return x * {i} + {'1' * (i * 3 % 37)}" for i in range(10)],
    "prose": [f"The {i}th fox {'jumps ' * (i % 6)}over the dog." for i in range(10)],
}


def tiny(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped queries, as SmolLM2
        vocab_size=256,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def lora(dest: Path, seed: int, layers: list[int] | None = TOP, targets: list[str] = TARGETS) -> Path:
    """A LoRA on `layers` (None: every layer) with random A and B (lora_B is zero when peft makes it)."""
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, layers_to_transform=layers, lora_dropout=0.0)
    model = get_peft_model(tiny(), cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(str(dest))
    return dest
