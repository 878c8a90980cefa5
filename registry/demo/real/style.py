"""The unlearning scenario's behaviour detector: how much of a generation is licence boilerplate.

The behaviour unlearned is the licence LoRA's: continuing a file header with licence text. A generated
line counts as boilerplate when it names a licence or its terms: `copyright`, `licence`/`license`,
`warranty`, `permission`, `GNU`, `free software`, `redistribute`, `liability`, `merchantability`,
`all rights reserved`, or a `(c) 2023`-style notice (case-insensitive). Empty lines are not counted;
the rate is boilerplate lines / lines. Prompts are the first tokens of held-out documents (file
headers) of the code, shell and licence domains, so the base shows the behaviour at a measurable rate
(on licence headers) and the licence LoRA's effect on code and shell headers is visible too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from .compute import autocast

BOILERPLATE = re.compile(
    r"(?i)(copyright|licen[cs]e|warrant|permission|\bgnu\b|free software|redistribut|liabil|"
    r"merchantab|all rights reserved|\(c\)\s*\d{4})"
)
HEADER_DOMAINS = ("code", "shell", "licence")  # whose held-out documents' headers are the prompts


def boilerplate(line: str) -> bool:
    return bool(BOILERPLATE.search(line))


def licence_lines(text: str) -> tuple[int, int]:
    """(lines of licence boilerplate, non-empty lines) of one generation."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return sum(boilerplate(ln) for ln in lines), len(lines)


class Generator:
    """Continuations from the base alone or with an adapter: the base is loaded once and each adapter is
    wrapped around it for one call and removed again, as `Evaluator` does (a base load is seconds, an
    adapter's a fraction of one)."""

    def __init__(self, base_folder: Path, precision: str = "fp32") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(base_folder)
        self.tok.padding_side = "left"
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.base = AutoModelForCausalLM.from_pretrained(base_folder).eval()
        self.precision = precision

    @torch.no_grad()
    def generate(
        self, adapter_folder: Path | None, prompts: Sequence[str], *, new_tokens: int, sample: bool, seed: int
    ) -> list[str]:
        """Continuations of `prompts` (greedy, or sampled at temperature 0.8 with a fixed seed), batched
        with left padding, in the generator's precision (compute.PRECISIONS).

        no_grad, not inference_mode, and every parameter marked as requiring grad: bf16 autocast keeps
        its bf16 copy of a weight for the whole call only for a leaf that requires grad and outside
        inference mode; otherwise it casts every weight again at every generated token (peft freezes
        the base it wraps). The copy is the same cast, so the text is the same; the casts were half of
        a generation's time (SmolLM2, one thread: 0.44 vs 0.20 ms per linear at 3 rows)."""
        model = self.base
        if adapter_folder is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(self.base, str(adapter_folder)).eval()
        for p in model.parameters():
            p.requires_grad_(True)  # no graph is built under no_grad: only autocast's cache sees it
        try:
            batch = self.tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
            torch.manual_seed(seed)
            with autocast(self.precision):
                out = model.generate(
                    **batch,
                    max_new_tokens=new_tokens,
                    do_sample=sample,
                    temperature=0.8 if sample else None,
                    top_p=0.95 if sample else None,
                    top_k=None,
                    pad_token_id=self.tok.pad_token_id,
                )
        finally:
            if adapter_folder is not None:
                self.base = model.unload()  # the injected layers removed unmerged: the pristine base
        width = batch["input_ids"].shape[1]
        return self.tok.batch_decode([row[width:] for row in out], skip_special_tokens=True)
