"""Evaluation of adapters on JSONL datasets: perplexity and label accuracy by LM likelihood.

Loads the base model from a local folder (or one fetched from s3:// by the caller) and the adapter with
peft; batched under `torch.inference_mode`, on the GPU when present.
"""

from .datasets import Dataset, load_dataset
from .runner import EvalRequest, Evaluator

__all__ = ["Dataset", "EvalRequest", "Evaluator", "load_dataset"]
