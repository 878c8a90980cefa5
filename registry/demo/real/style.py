"""The unlearning scenario's style detector: how much of a generation looks like Python code.

A generated line counts as Python when, stripped, it is a comment (`# ...`), starts with a Python
statement keyword (`def`, `class`, `import`, `from x import`, `return`, `if ...:`, `for`, `with`,
`raise`, `@decorator`, `self.`...), or parses with `ast` as a statement that is more than a bare name
or constant AND contains one of `( ) [ ] { } =` (so an English sentence, which rarely parses, and a
lone word, which does, are not code). Empty lines are not counted. The rate is code lines / lines.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from .compute import autocast

KEYWORD = re.compile(
    r"^(def |class |import |from \S+ import |return\b|if .*:$|elif .*:$|else:$|for .* in .*:$|while .*:$|"
    r"try:$|except\b.*:$|finally:$|with .*:$|raise\b|yield\b|assert |@\w|lambda\b|pass$|break$|"
    r"continue$|self\.)"
)
SYMBOLS = set("()[]{}=")


def looks_like_python(line: str) -> bool:
    s = line.strip()
    if not s:
        return False
    if s.startswith("#") or KEYWORD.match(s):
        return True
    if not SYMBOLS & set(s):
        return False
    try:
        tree = ast.parse(s + " pass" if s.endswith(":") else s)
    except (SyntaxError, ValueError):
        return False
    body = tree.body
    return bool(body) and not (
        len(body) == 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Name | ast.Constant)
    )


def code_lines(text: str) -> tuple[int, int]:
    """(lines that look like Python, non-empty lines) of one generation."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return sum(looks_like_python(ln) for ln in lines), len(lines)


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

    @torch.inference_mode()
    def generate(
        self, adapter_folder: Path | None, prompts: Sequence[str], *, new_tokens: int, sample: bool, seed: int
    ) -> list[str]:
        """Continuations of `prompts` (greedy, or sampled at temperature 0.8 with a fixed seed), batched
        with left padding, in the generator's precision (compute.PRECISIONS)."""
        model = self.base
        if adapter_folder is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(self.base, str(adapter_folder)).eval()
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
