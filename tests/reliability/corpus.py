"""The malformed-adapter corpus: each case is a valid PEFT LoRA folder with one thing broken, plus the
form fields (name, base model, tags) to register it with. Each must be refused before anything is
stored, with an error naming what is wrong."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
Q0 = "base_model.model.model.layers.0.self_attn.q_proj"


@dataclass
class Case:
    id: str
    config: dict[str, Any] | None = None  # fields to set in adapter_config.json
    raw_config: str | None = None  # or the whole file's text
    tensors: Callable[[dict[str, torch.Tensor]], None] | None = None
    name: str = "rel/corpus"
    base_model: str | None = None
    tags: list[str] = field(default_factory=list)
    expect: str = ""  # a fragment the error must contain (the field it names)

    def build(self, valid: Path, dest: Path) -> Path:
        shutil.copytree(valid, dest)
        if self.raw_config is not None:
            (dest / CONFIG).write_text(self.raw_config)
        if self.config is not None:
            data = json.loads((dest / CONFIG).read_text())
            data.update(self.config)
            (dest / CONFIG).write_text(json.dumps(data))  # allow_nan: NaN / Infinity literals as PEFT writes
        if self.tensors is not None:
            tensors = load_file(dest / WEIGHTS)
            self.tensors(tensors)
            save_file(tensors, dest / WEIGHTS)
        return dest


def _retype(dtype: torch.dtype) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(tensors: dict[str, torch.Tensor]) -> None:
        for key in tensors:
            tensors[key] = (tensors[key] * 100).to(dtype)

    return edit


def _zero_width(tensors: dict[str, torch.Tensor]) -> None:
    tensors[Q0 + ".lora_A.weight"] = torch.zeros(4, 0)


def _nan(tensors: dict[str, torch.Tensor]) -> None:
    tensors[Q0 + ".lora_B.weight"][0, 0] = float("nan")


def _drop_b(tensors: dict[str, torch.Tensor]) -> None:
    del tensors[Q0 + ".lora_B.weight"]


def _nested(depth: int) -> str:
    return json.dumps({"peft_type": "LORA"})[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"


CASES = [
    Case("alpha-null", {"lora_alpha": None}, expect="lora_alpha"),
    Case("alpha-string", {"lora_alpha": "abc"}, expect="lora_alpha"),
    Case("alpha-nan", {"lora_alpha": float("nan")}, expect="lora_alpha"),
    Case("alpha-inf", {"lora_alpha": float("inf")}, expect="lora_alpha"),
    Case("base-int", {"base_model_name_or_path": 5}, expect="base_model_name_or_path"),
    Case("base-list", {"base_model_name_or_path": ["a"]}, expect="base_model_name_or_path"),
    Case("base-too-long", {"base_model_name_or_path": "x" * 300}, expect="base_model_name_or_path"),
    Case("base-path-escape", {"base_model_name_or_path": "../../../../etc"}, expect="base_model"),
    Case("base-newline", {"base_model_name_or_path": "tiny-llama\n"}, expect="base_model_name_or_path"),
    Case("targets-int", {"target_modules": 5}, expect="target_modules"),
    Case("targets-bad-regex", {"target_modules": "("}, expect="target_modules"),
    Case("targets-empty", {"target_modules": []}, expect="target_modules"),
    Case("targets-int-items", {"target_modules": [5]}, expect="target_modules"),
    Case("rank-pattern-string", {"rank_pattern": "abc"}, expect="rank_pattern"),
    Case("rank-pattern-bad-regex", {"rank_pattern": {"(": 4}}, expect="rank_pattern"),
    Case("rank-pattern-value", {"rank_pattern": {"q_proj": "x"}}, expect="rank_pattern"),
    Case("alpha-pattern-null", {"alpha_pattern": {"q_proj": None}}, expect="alpha_pattern"),
    Case("modules-to-save-int", {"modules_to_save": 5}, expect="modules_to_save"),
    Case("r-string", {"r": "8"}, expect="r:"),
    Case("r-zero", {"r": 0}, expect="r:"),
    Case("r-bool", {"r": True}, expect="r:"),
    Case("r-1000-mismatch", {"r": 1000}, expect="r=1000"),
    Case("dora-string", {"use_dora": "yes"}, expect="use_dora"),
    Case("peft-type-int", {"peft_type": 5}, expect="peft_type"),
    Case("config-array", raw_config="[1, 2]", expect="JSON object"),
    Case("config-not-json", raw_config="{not json", expect="not valid JSON"),
    Case("config-deep-nesting", raw_config=_nested(100_000), expect="config"),
    Case("config-moderate-nesting", raw_config=_nested(40), expect="nested deeper"),
    Case("factors-int32", tensors=_retype(torch.int32), expect="int32"),
    Case("factors-zero-width", tensors=_zero_width, expect="empty dimension"),
    Case("factors-nan", tensors=_nan, expect="NaN"),
    Case("factors-missing-b", tensors=_drop_b, expect="lora_B"),
    Case("param-base-too-long", base_model="x" * 300, expect="base_model"),
    Case("param-revision-too-long", base_model="tiny-llama@" + "r" * 200, expect="base_model"),
    Case("param-base-unregistered", base_model="tiny-lama", expect="tiny-llama"),
    Case("name-newline", name="rel/abc\n", expect="name"),
    Case("name-upper", name="Rel/abc", expect="name"),
    Case("tag-newline", tags=["team=a\nb"], expect="tag"),
    Case("tag-no-value", tags=["team"], expect="tag"),
]
