"""Perplexity and likelihood-scored accuracy of a causal LM, batched, under inference mode."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .tokens import Tokenizer

BATCH = 16

# (input_ids, attention_mask) -> logits (batch, seq, vocab): a model, or a decoding-time combination.
LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scorer = torch.nn.Module | LogitsFn


def logits_fn(model: Scorer) -> LogitsFn:
    if isinstance(model, torch.nn.Module):
        return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits
    return model


def right_padded(batch: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of `batch`, padded on the right to its longest sequence: the one
    batch layout of every scorer here (and of the real demo's prefix cache)."""
    width = max(len(s) for s in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for i, s in enumerate(batch):
        ids[i, : len(s)] = torch.tensor(list(s))
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def _sequence_logprobs(
    model: Scorer, seqs: Sequence[list[int]], starts: Sequence[int], device: torch.device
) -> tuple[list[float], list[int]]:
    """For each sequence: sum of log p(token_t | tokens_<t) for t >= start, and how many tokens that is."""
    forward = logits_fn(model)
    sums: list[float] = []
    counts: list[int] = []
    for b in range(0, len(seqs), BATCH):
        batch, begin = seqs[b : b + BATCH], starts[b : b + BATCH]
        ids, mask = right_padded(batch, device)
        logits = forward(ids, mask).float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        positions = torch.arange(1, ids.shape[1], device=device)[None, :]
        starts_t = torch.tensor(begin, device=device)[:, None].clamp(min=1)
        keep = (positions >= starts_t) & (mask[:, 1:] == 1)
        sums += (logp * keep).sum(dim=1).tolist()
        counts += keep.sum(dim=1).tolist()
    return sums, counts


def _fit(ids: list[int], max_len: int) -> list[int]:
    return ids[-max_len:]  # keep the end: that is what is scored


def scored_ids(tok: Tokenizer, text: str, max_len: int) -> list[int]:
    """The token ids `perplexities` scores for `text`."""
    return _fit(tok.encode(text), max_len)


@torch.inference_mode()
def perplexity(
    model: Scorer, tok: Tokenizer, texts: Sequence[str], device: torch.device, max_len: int
) -> float:
    return perplexities(model, tok, [texts], device, max_len)[0]


@torch.inference_mode()
def perplexities(
    model: Scorer, tok: Tokenizer, datasets: Sequence[Sequence[str]], device: torch.device, max_len: int
) -> list[float]:
    """The perplexity of each dataset, their texts scored together in shared batches: many small
    datasets (one held-out document each) cost a few batched forwards, not one forward per dataset
    (on a CPU, 18 documents of 48 tokens: 6 s batched, 8 s one by one)."""
    seqs: list[list[int]] = []
    owner: list[int] = []
    for i, texts in enumerate(datasets):
        fitted = [s for s in (scored_ids(tok, t, max_len) for t in texts) if len(s) >= 2]
        if not fitted:
            raise ValueError("perplexity needs texts of at least two tokens")
        seqs += fitted
        owner += [i] * len(fitted)
    sums, counts = _sequence_logprobs(model, seqs, [1] * len(seqs), device)
    total = [0.0] * len(datasets)
    tokens = [0] * len(datasets)
    for i, s, n in zip(owner, sums, counts, strict=True):
        total[i] += s
        tokens[i] += n
    return [math.exp(-t / n) for t, n in zip(total, tokens, strict=True)]


@torch.inference_mode()
def accuracy(
    model: Scorer, tok: Tokenizer, rows: Sequence[dict], device: torch.device, max_len: int
) -> float:
    return accuracies(model, tok, [rows], device, max_len)[0]


@torch.inference_mode()
def accuracies(
    model: Scorer, tok: Tokenizer, datasets: Sequence[Sequence[dict]], device: torch.device, max_len: int
) -> list[float]:
    """The accuracy of each dataset: each row's label competes with every label seen in its dataset
    (or the row's `choices`), scored as the continuation `text + " " + label` of `text`.

    The continuation is tokenised with its context as ONE string (as lm-evaluation-harness does: the
    context's trailing spaces move to the continuation). Tokenising the parts apart would score `" "`
    then `"label"`, which a BPE tokenizer never produces in running text (SmolLM2: `"x yes"` is `x`,
    ` yes`; apart it is `x`, ` `, `yes`), so a model that learned `text label` would be scored on a
    sequence it never saw. The rows of every dataset are scored together in shared batches, as
    `perplexities` does (many one-item datasets cost a few batched forwards, not one each); a row
    whose every continuation is one token after its context is scored from one forward of the context
    (the continuations' log-probabilities at its last position), the same scores for a fraction of
    the sequences."""
    one: list[tuple[int, int, list[int], list[str], list[int]]] = []  # (k, i, context, choices, ids)
    seqs, starts, owners = [], [], []
    for k, rows in enumerate(datasets):
        labels = sorted({r["label"] for r in rows})
        for i, row in enumerate(rows):
            context = row["text"].rstrip(" ")
            gap = row["text"][len(context) :] or " "
            head = tok.encode(context)
            choices = list(row.get("choices") or labels)
            wholes = [tok.encode(context + gap + c) for c in choices]
            shared = [_shared(head, w) for w in wholes]
            if all(n == len(head) and len(w) == n + 1 for n, w in zip(shared, wholes, strict=True)):
                one.append((k, i, _fit(head, max_len - 1), choices, [w[-1] for w in wholes]))
                continue
            for choice, whole, n in zip(choices, wholes, shared, strict=True):
                full = _fit(whole, max_len)
                seqs.append(full)
                starts.append(max(1, len(full) - (len(whole) - n)))
                owners.append((k, i, choice))
    scored: list[tuple[tuple[int, int], str, float]] = []
    if seqs:
        sums, _ = _sequence_logprobs(model, seqs, starts, device)
        scored += [((k, i), c, s) for (k, i, c), s in zip(owners, sums, strict=True)]
    if one:
        last = _last_logprobs(model, [h for _, _, h, _, _ in one], device)
        for (k, i, _, choices, ids), logp in zip(one, last, strict=True):
            scored += [((k, i), c, float(logp[t])) for c, t in zip(choices, ids, strict=True)]
    best: dict[tuple[int, int], tuple[float, str]] = {}
    for key, choice, score in scored:
        if key not in best or score > best[key][0]:
            best[key] = (score, choice)
    return [
        sum(best[(k, i)][1] == row["label"] for i, row in enumerate(rows)) / len(rows)
        for k, rows in enumerate(datasets)
    ]


def _shared(head: list[int], whole: list[int]) -> int:
    """How many leading tokens `whole` shares with `head` (the context's tokens)."""
    return next(
        (j for j, (a, b) in enumerate(zip(head, whole, strict=False)) if a != b), min(len(head), len(whole))
    )


def _last_logprobs(model: Scorer, seqs: Sequence[list[int]], device: torch.device) -> list[torch.Tensor]:
    """For each sequence, log p(next token | the sequence) over the vocabulary (right padding, as
    `_sequence_logprobs` pads: the last real position is read)."""
    forward = logits_fn(model)
    out: list[torch.Tensor] = []
    for b in range(0, len(seqs), BATCH):
        batch = seqs[b : b + BATCH]
        logits = forward(*right_padded(batch, device))
        ends = torch.tensor([len(s) - 1 for s in batch], device=device)
        last = logits[torch.arange(len(batch), device=device), ends].float()
        out += list(torch.log_softmax(last, dim=-1).cpu())
    return out
