"""Tokenization: the base model folder's own tokenizer, else UTF-8 bytes.

Models built from config for tests and the demo ship no tokenizer; byte ids (with the vocabulary at
least as large as the bytes used) are exact and need no download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..errors import InvalidInput

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...


class ByteTokenizer:
    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        ids = list(text.encode("utf-8"))
        if ids and max(ids) >= self.vocab_size:
            raise InvalidInput(
                f"dataset: text has byte {max(ids)} but the model has no tokenizer and a vocabulary of "
                f"{self.vocab_size}",
                field="dataset",
            )
        return ids


class HfTokenizer:
    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(folder)

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])


def tokenizer_for(folder: Path, vocab_size: int) -> Tokenizer:
    if any((folder / name).exists() for name in TOKENIZER_FILES):
        return HfTokenizer(folder)
    return ByteTokenizer(vocab_size)
