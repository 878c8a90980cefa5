"""Synthetic domains for the demo: key=value facts behind a domain tag, on one shared vocabulary.

Every line is `<tag>: k1=v1; k2=v2; ...` with keys and values drawn from one shared list of
three-letter words (ASCII, so the byte tokenizer covers it). A domain is a tag, a key set and a fact
table (key -> value). The base model is pre-trained on every tag with the same keys but *random*
values: it learns the format, which keys follow which tag and which words are values, but no facts.
A LoRA trained on a domain therefore has only content to learn (its facts), not format; and domains
that share keys but disagree on values conflict, the way real skills can.

Domains (tags are single letters so the format costs the same everywhere):
- `n` (news):   keys K1, table f_n
- `r` (rumor):  keys K1 (same keys as news), table f_r that disagrees with f_n on every key
- `s` (sports): keys K2 (disjoint from K1), table f_s
- `w` (weather): keys K3 (disjoint), table f_w; its training data is split by key into two halves
  for the distribution-generalization scenario (each half LoRA sees half of the facts)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"
PAIRS_PER_LINE = 3


@dataclass(frozen=True)
class Domain:
    name: str  # human name, also used in adapter names
    tag: str
    keys: tuple[str, ...]
    table: dict[str, str]

    def line(self, rng: random.Random, keys: tuple[str, ...] | None = None, fact_rate: float = 1.0) -> str:
        """One line of this domain; each value is the fact with probability `fact_rate`, else random."""
        pool = keys or self.keys
        chosen = rng.sample(pool, PAIRS_PER_LINE)
        pairs = [
            f"{k}={self.table[k] if rng.random() < fact_rate else rng.choice(VALUE_WORDS)}" for k in chosen
        ]
        return f"{self.tag}: " + "; ".join(pairs) + "."


def _words(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = rng.choice(CONSONANTS) + rng.choice(VOWELS) + rng.choice(CONSONANTS)
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


_RNG = random.Random(1234)
_TAKEN: set[str] = set()
KEY_WORDS = _words(_RNG, 72, _TAKEN)
VALUE_WORDS = _words(_RNG, 48, _TAKEN)  # 24 made negation leak through shared values (measured)


def _table(rng: random.Random, keys: list[str], avoid: dict[str, str] | None = None) -> dict[str, str]:
    table = {}
    for k in keys:
        choices = [v for v in VALUE_WORDS if not avoid or v != avoid[k]]
        table[k] = rng.choice(choices)
    return table


def build_domains(seed: int = 0) -> dict[str, Domain]:
    rng = random.Random(seed)
    k1, k2, k3 = KEY_WORDS[:24], KEY_WORDS[24:48], KEY_WORDS[48:72]
    news = _table(rng, k1)
    rumor = _table(rng, k1, avoid=news)
    return {
        "news": Domain("news", "n", tuple(k1), news),
        "rumor": Domain("rumor", "r", tuple(k1), rumor),
        "sports": Domain("sports", "s", tuple(k2), _table(rng, k2)),
        "weather": Domain("weather", "w", tuple(k3), _table(rng, k3)),
    }


@dataclass
class DemoData:
    domains: dict[str, Domain]
    pretrain: list[str]  # every tag, random values
    train: dict[str, list[str]]  # adapter name -> its training lines (facts)
    test: dict[str, list[str]]  # domain -> held-out lines (facts)


def generate(
    seed: int = 0,
    train_lines: int = 600,
    test_lines: int = 64,
    pretrain_lines: int = 4000,
    pretrain_fact_rate: float = 0.5,
) -> DemoData:
    domains = build_domains(seed)
    rng = random.Random(seed + 1)
    pretrain = [
        d.line(rng, fact_rate=pretrain_fact_rate)
        for _ in range(pretrain_lines // len(domains))
        for d in domains.values()
    ]
    rng.shuffle(pretrain)
    train = {name: [d.line(rng) for _ in range(train_lines)] for name, d in domains.items()}
    weather = domains["weather"]
    half = len(weather.keys) // 2
    halves = (weather.keys[:half], weather.keys[half:])
    train["weather-a"] = [weather.line(rng, keys=halves[0]) for _ in range(train_lines)]
    train["weather-b"] = [weather.line(rng, keys=halves[1]) for _ in range(train_lines)]
    test_rng = random.Random(seed + 2)
    test = {name: [d.line(test_rng) for _ in range(test_lines)] for name, d in domains.items()}
    return DemoData(domains, pretrain, train, test)


def write_jsonl(lines: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines), encoding="ascii")
    return path
