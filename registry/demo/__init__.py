"""`pemreg demo`: Zhang et al. 2023's four settings in miniature, through the product.

A tiny GPT-2 is pre-trained on synthetic domains (data.py, train.py), LoRA and (IA)3 adapters are
trained on each domain and registered, then the compositions in `examples/specs/demo-*.yaml` run as
real `compose` flows (scenarios.py); report.py prints and writes the measured table.
"""

from .scenarios import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
