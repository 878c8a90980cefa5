"""Check an adapter's module shapes against its base model's config, at registration.

The base is built from its `config.json` on the `meta` device (transformers allocates no memory there),
so every module's (in_features, out_features) is known without reading weights. A width-32 LoRA
registered against a width-64 base is then refused naming the module, instead of failing at compose
time. The config is the one the catalog recorded when the base was registered from a folder
(`base_models.config`), so the CLI, remote mode and REST check the same thing. When there is none (a
hub id or s3:// source) or it cannot be built (custom code, unknown architecture), the check is
skipped: registration never depends on it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from registry.errors import AdapterFormatError

log = logging.getLogger("pemreg.base_shapes")
Dims = dict[str, tuple[int, int]]  # module path -> (in_features, out_features)


@lru_cache(maxsize=8)
def _dims_cached(config_file: str, _mtime: float) -> Dims | None:
    try:
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
        from transformers.pytorch_utils import Conv1D

        config = AutoConfig.from_pretrained(Path(config_file).parent, trust_remote_code=False)
        with torch.device("meta"):
            try:
                model = AutoModelForCausalLM.from_config(config)
            except ValueError:  # not a causal LM (encoder-only, seq2seq): the bare model
                model = AutoModel.from_config(config)
    except Exception as exc:  # any failure means "cannot tell", never a refusal
        log.info("base shapes unknown for %s: %s", config_file, str(exc).splitlines()[0] if str(exc) else exc)
        return None
    dims: Dims = {}
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            dims[path] = (module.in_features, module.out_features)
        elif isinstance(module, Conv1D):  # GPT-2 style: weight is (in, out)
            dims[path] = (int(module.weight.shape[0]), int(module.weight.shape[1]))
    return dims


@lru_cache(maxsize=8)
def _dims_of_text(config_text: str) -> Dims | None:
    with tempfile.TemporaryDirectory(prefix="pemreg-base-config-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(config_text)
        return _dims_cached.__wrapped__(str(config), 0.0)


def recorded_module_dims(config: dict[str, Any] | None) -> Dims | None:
    """Module dims from a base's recorded config.json (None: nothing recorded, or not buildable)."""
    if not config:
        return None
    return _dims_of_text(json.dumps(config, sort_keys=True))


def base_module_dims(folder: Path) -> Dims | None:
    config = folder / "config.json"
    if not config.is_file():
        return None
    return _dims_cached(str(config), config.stat().st_mtime)


def check_module_shapes(pem_type: str, module_shapes: dict[str, Any], dims: Dims, base_label: str) -> None:
    """Raise naming the first module whose factors don't fit the base (or that the base lacks)."""
    from registry.pem import get_kind  # torch: registration's module is imported on light paths too

    kind = get_kind(pem_type)
    for path in sorted(module_shapes):
        shapes = module_shapes[path]
        if path not in dims:
            raise AdapterFormatError(
                f"module {path!r}: base model {base_label} has no such linear module", field="weights"
            )
        in_f, out_f = dims[path]
        mismatch = kind.base_mismatch(shapes, in_f, out_f)
        if mismatch is not None:
            got, want = mismatch
            raise AdapterFormatError(
                f"module {path!r}: {got} do not fit base model {base_label} ({want})", field="weights"
            )
