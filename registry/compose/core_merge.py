"""`core_merge`: keep each input's core region, resolve overlapping cores, sum the rest.

Pure math on the dense per-module deltas of the inputs (LoRA: D_i = s_i B_i A_i; (IA)3: l_i - 1), in
small named steps (tests reimplement each from this definition):
- T_i = w_i D_i, the weighted delta.
- score_i = |T_i| (criterion `magnitude`), or |T_i| * a (criterion `importance`), where `a` is the
  base model's activation norm per entry on a calibration set, broadcast along the axis the delta
  acts on (LoRA: the L2 norm of each input feature column over all calibration tokens, so
  score[o, c] = |T_i[o, c]| * ||X[:, c]||, the change that entry makes to the module output, as in
  Wanda pruning; (IA)3: input norms for feed-forward modules, output norms for the others).
- core_i = the int(density * numel) entries with the largest score_i (PEFT's magnitude count rule),
  restricted to score_i > 0 so a zero-weight input owns nothing.
- owner of an entry in one or more cores = the input in whose core it is with the largest |T_i| at
  that entry (ties: the lowest input index). Stated rule: the larger weighted delta wins.
- merged = T_owner where an owner exists, else sum_i T_i (the weighted sum of the non-core rest).
  Inside a core the other inputs' values are dropped: that is the isolation.
- overlap(i, j) = |core_i & core_j| / min(|core_i|, |core_j|) (the overlap coefficient; 0 when
  either core is empty). The engine reports it per module and, per pair, the RMS over the modules
  both inputs touch.
The LoRA composer then recompresses `merged` to rank k with the exact truncated SVD (lowrank.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from registry.compose.pruning import magnitude_mask
from registry.errors import InvalidInput

CRITERIA = ("magnitude", "importance")


@dataclass(frozen=True)
class ActivationNorms:
    """L2 norms over calibration tokens of one base module's input features and output features."""

    input: torch.Tensor  # (in_features,)
    output: torch.Tensor  # (out_features,)


def module_norms(
    norms: Mapping[str, ActivationNorms] | None, criterion: str, path: str
) -> ActivationNorms | None:
    """The module's calibration norms under 'importance' (an error if the calibration lacks it)."""
    if criterion != "importance":
        return None
    if norms is None or path not in norms:
        raise InvalidInput(f"calibration has no activation norms for module {path!r}", field="calibration")
    return norms[path]


def core_scores(weighted: torch.Tensor, entry_norms: torch.Tensor | None) -> torch.Tensor:
    """|T_i|, times the per-entry activation norms (broadcast to T_i's shape) when given."""
    score = weighted.abs()
    return score if entry_norms is None else score * entry_norms.to(score.device, score.dtype)


def core_mask(score: torch.Tensor, density: float) -> torch.Tensor:
    """The int(density * numel) highest-scoring entries with a positive score (scores are >= 0: the
    magnitude-prune rule, `magnitude_mask`, on them)."""
    return magnitude_mask(score, density) & (score > 0)


@dataclass(frozen=True)
class PackedCore:
    """A core mask kept as bits (numel / 8 bytes): the overlaps need every input's core at the end,
    and boolean masks would hold n bytes per module entry, growing with the number of inputs."""

    bits: np.ndarray
    size: int  # entries in the core

    @classmethod
    def of(cls, mask: torch.Tensor) -> PackedCore:
        return cls(np.packbits(mask.detach().to("cpu").reshape(-1).numpy()), int(mask.sum()))


def overlap_fraction(a: PackedCore, b: PackedCore) -> float:
    smaller = min(a.size, b.size)
    return int(np.bitwise_count(a.bits & b.bits).sum()) / smaller if smaller else 0.0


def core_merge(
    deltas: Iterable[torch.Tensor],
    weights: Sequence[float],
    indices: Sequence[int],
    density: float,
    entry_norms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Merge one module. `deltas` may be a generator: inputs are consumed one at a time, so memory is
    four module-sized buffers plus one core mask per input kept as bits (1/32 of a float32 module).
    `indices`: the inputs' positions in the composition (for the report).
    Returns the merged dense delta and {"core_sizes": {i: n}, "core_overlap": [{i, j, overlap}]}."""
    rest: torch.Tensor | None = None  # sum_i T_i
    best = kept = torch.empty(0)  # largest |T_i| among the cores holding an entry, and that T_i
    cores: list[PackedCore] = []
    for weight, delta in zip(weights, deltas, strict=True):
        weighted = weight * delta
        core = core_mask(core_scores(weighted, entry_norms), density)
        if rest is None:
            rest, best, kept = weighted.clone(), torch.zeros_like(weighted), torch.zeros_like(weighted)
        else:
            rest.add_(weighted)
        # Strictly larger: on a tie the earlier input keeps the entry.
        wins = core & (weighted.abs() > best)
        kept = torch.where(wins, weighted, kept)
        best = torch.where(wins, weighted.abs(), best)
        cores.append(PackedCore.of(core))
        del core, wins
    assert rest is not None, "core_merge needs at least one input"
    # Core entries have |T_i| > 0, so best > 0 exactly on the entries some core owns.
    merged = torch.where(best > 0, kept, rest)
    pairs = [
        {"i": indices[a], "j": indices[b], "overlap": overlap_fraction(cores[a], cores[b])}
        for a in range(len(cores))
        for b in range(a + 1, len(cores))
    ]
    sizes = {str(i): c.size for i, c in zip(indices, cores, strict=True)}
    return merged, {"core_sizes": sizes, "core_overlap": pairs}


def overlap_summary(modules: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per pair of inputs: RMS and mean of the core overlap over the modules both inputs touch."""
    per_pair: dict[tuple[int, int], list[float]] = {}
    for report in modules.values():
        for pair in report.get("core", {}).get("core_overlap", []):
            per_pair.setdefault((pair["i"], pair["j"]), []).append(float(pair["overlap"]))
    return [
        {
            "i": i,
            "j": j,
            "rms_overlap": math.sqrt(sum(v * v for v in values) / len(values)),
            "mean_overlap": sum(values) / len(values),
            "max_overlap": max(values),
            "modules": len(values),
        }
        for (i, j), values in sorted(per_pair.items())
    ]
