"""A prefix cache for evaluation: the base's hidden states below the layers a variant changes, computed
once per document and reused by every variant evaluated on that document.

Many adapters change only the top layers of the base (peft `layers_to_transform`; the real demo's LoRAs
are trained on the top `plan.Budget.lora_layers` layers). The hidden states entering the lowest changed
layer k are then the base's own for every such variant: this cache computes them once per document (a
forward that stops at layer k) and each variant's logits come from layers k.., the final norm and the
output head run on them (`inputs_embeds`, the decoder's `layers` cut to `layers[k:]` for the call).
`Evaluator` (runner.py) keeps one for its resident base, so a search's candidates and every
composition evaluated on the same documents in a warm process share one prefix computation; the real
demo's pair sweep keeps one per sweep, with named memos of a variant's final hidden states per document
where it reuses them (each input of a decoding-time ensemble: every weight, every pair with that input);
the sweep's top layers run on batches of FILL_BATCH documents, the head per evaluation batch.

Memory: with `max_bytes`, the prefixes of every layer and the named memos share one store, least
recently used documents evicted beyond the bound (tensor bytes). Eviction only costs a recomputation
(each batch keeps its own rows while it is served), never a different result beyond float rounding.

Why it is exact, not an approximation: the evaluation pads on the right (metrics.py), so a document's
tokens attend only to earlier tokens of the same document; the decoder builds position ids from the
width alone (0..T-1) and the causal mask from the same attention mask whether it gets token ids or
embeddings; so the states entering layer k for a row depend on that row's tokens only, not on the batch
it was computed in (up to float rounding). Padded positions get zeros: no real token attends to them and
they stay finite. Each cache also checks itself: the first batch it serves from a layer is run through
the full model as well, and the logits must agree within CHECK_ATOL (else PrefixMismatch; `Evaluator`
then drops its cache and uses the full forward: an architecture that breaks the argument above).

The guard: the layer a variant starts from is derived from what it changes, never assumed. Changed are
every module peft injected into the base (all adapters loaded, active or not) and the modules whose
weights the caller says it rewrote (`merged`, module paths); each must sit inside a decoder layer, else
ValueError (an embedding or output head change, tied or not, has no prefix to share). The cached prefix
of a layer is valid as long as nothing below that layer changes, which the guard makes true by
construction.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import torch

from registry.evaluation import metrics
from registry.evaluation.metrics import LogitsFn

# Largest |logit difference| the self-check accepts between the cached path and the full forward. A
# token's log-probability moves by at most twice the largest logit change, so perplexities agree within
# about 2 * CHECK_ATOL relative; fp32 rounding between batch shapes is ~1e-5 on SmolLM2's logits.
CHECK_ATOL = 1e-3
CHECK_ROWS = 2  # rows of a batch the self-check runs through the full model (a full forward is costly)
# Documents per forward in `fill`: the top layers' small matrices run faster on more rows than the
# evaluation's batches of metrics.BATCH = 16 (SmolLM2, 2 threads: 48 documents of 96 tokens 1.25x
# faster per document than 16); the head, whose logits are large, still runs per metrics batch.
FILL_BATCH = 48

Key = tuple[int, ...]  # a document's token ids
Memo = MutableMapping[Key, torch.Tensor]  # document -> one variant's final hidden states (after the norm)
HiddenFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids, mask) -> final hidden states


class PrefixMismatch(RuntimeError):
    """The self-check failed: the cached path's logits differ from the model's own full forward."""


class _Lru:
    """Tensors by key; beyond `max_bytes` (None: no bound) the least recently used are dropped. A
    tensor larger than the bound is not kept at all."""

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()

    def get(self, key: Hashable) -> torch.Tensor | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        self.pop(key)
        size = value.nelement() * value.element_size()
        if self.max_bytes is not None and size > self.max_bytes:
            return
        self._items[key] = value
        self.bytes += size
        while self.max_bytes is not None and self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def pop(self, key: Hashable) -> None:
        if key in self._items:
            self._drop(key)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._items))

    def _drop(self, key: Hashable) -> None:
        old = self._items.pop(key)
        self.bytes -= old.nelement() * old.element_size()


class _NamedMemo(MutableMapping[Key, torch.Tensor]):
    """One named memo, its entries kept in the cache's shared store (so under its bound)."""

    def __init__(self, store: _Lru, name: str) -> None:
        self._store: _Lru = store
        self._name = name

    def __getitem__(self, key: Key) -> torch.Tensor:
        found = self._store.get(("memo", self._name, key))
        if found is None:
            raise KeyError(key)
        return found

    def __setitem__(self, key: Key, value: torch.Tensor) -> None:
        self._store.put(("memo", self._name, key), value)

    def __delitem__(self, key: Key) -> None:
        if key not in self:
            raise KeyError(key)
        self._store.pop(("memo", self._name, key))

    def __iter__(self) -> Iterator[Key]:
        return iter([k[2] for k in self._store if isinstance(k, tuple) and k[:2] == ("memo", self._name)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Stop(Exception):
    """Raised by the pre-hook on the first layer not in the prefix: the rest of the forward is skipped."""

    def __init__(self, hidden: torch.Tensor) -> None:
        self.hidden = hidden


class PrefixCache:
    """Per document, the base's hidden states entering layer k (for each k a variant starts from), and
    named memos of a variant's final hidden states. `base` is the transformers causal LM the variants
    are made from (the `Evaluator`'s resident base; peft wraps it in place). Its output head must be a
    linear map without bias (then logits are linear in the final hidden states, which lets a
    decoding-time ensemble combine those instead of logits: one head per ensemble, not one per input).
    `max_bytes` bounds the prefixes and named memos together (None: no bound, for a short-lived run)."""

    def __init__(self, base: Any, max_bytes: int | None = None) -> None:
        self.base = base
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        if not isinstance(self.head, torch.nn.Linear) or self.head.bias is not None:
            raise ValueError("the prefix cache needs an output head that is a linear map without bias")
        self.n_layers: int = len(self.decoder.layers)
        self._store: _Lru = _Lru(max_bytes)  # (layer, document) -> prefix; ("memo", name, document) -> memo
        self._memos: dict[str, Memo] = {}
        self._checked: set[int] = set()
        self.computed: int = 0  # documents whose prefix was computed (the rest were served from memory)

    def memo(self, name: str) -> Memo:
        """A named memo kept in the cache's store (under its bound): the caller names what the variant
        is and guarantees that one name is only ever used for one variant."""
        return self._memos.setdefault(name, _NamedMemo(self._store, name))

    @property
    def stored_bytes(self) -> int:
        """Bytes of the tensors the cache holds (prefixes and named memos)."""
        return self._store.bytes

    def start(self, merged: Iterable[str] = ()) -> int:
        """The lowest decoder layer the current variant changes: peft's injected modules and the modules
        at the paths in `merged`; the layer count when nothing is changed. ValueError for a change
        outside the decoder layers."""
        owner = {id(m): i for i, layer in enumerate(self.decoder.layers) for m in layer.modules()}
        changed = [(p, self.base.get_submodule(p)) for p in merged]
        changed += [(p, m) for p, m in self.base.named_modules() if type(m).__module__.startswith("peft.")]
        lowest = self.n_layers
        for path, module in changed:
            if id(module) not in owner:
                raise ValueError(
                    f"the variant changes {path}, outside the decoder layers: no prefix to share"
                )
            lowest = min(lowest, owner[id(module)])
        return lowest

    def fill(self, seqs: Sequence[Sequence[int]], memo: Memo, merged: Iterable[str] = ()) -> None:
        """The current variant's final hidden states of every sequence in `seqs` not yet in `memo`, in
        batches of FILL_BATCH documents (right-padded)."""
        todo = list(dict.fromkeys(k for k in map(tuple, seqs) if k not in memo))
        compute = self.hidden(memo, merged)
        for b in range(0, len(todo), FILL_BATCH):
            compute(*metrics.right_padded(todo[b : b + FILL_BATCH], self.head.weight.device))

    def hidden(self, memo: Memo | None = None, merged: Iterable[str] = ()) -> HiddenFn:
        """(ids, mask) -> the final hidden states of the base as it is now (peft's injected layers
        included, the weights at `merged` rewritten by the caller), from the cached prefix; zeros at
        padded positions. With `memo`, documents found there are served from it and the others stored."""
        paths = list(merged)

        def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            lengths = _right_padded(mask)
            keys = [tuple(ids[i, :n].tolist()) for i, n in enumerate(lengths)]
            if memo is not None and all(k in memo for k in keys):
                return _stack([memo[k] for k in keys], ids.shape[1])
            start = self.start(paths)
            final = self._top(self._prefix_of(ids, mask, keys, lengths, start), mask, start)
            final = final * mask[..., None].to(final.dtype)  # padded positions as served from a memo
            if start not in self._checked:
                self._check(ids[:CHECK_ROWS], mask[:CHECK_ROWS], final[:CHECK_ROWS], lengths)
                self._checked.add(start)
            if memo is not None:
                memo.update(
                    {k: final[i, :n].clone() for i, (k, n) in enumerate(zip(keys, lengths, strict=True))}
                )
            return final

        return forward

    def scorer(self, merged: Iterable[str] = (), memo: Memo | None = None) -> LogitsFn:
        """(ids, mask) -> logits: the head on `hidden(memo, merged)`."""
        hidden = self.hidden(memo, merged)
        return lambda ids, mask: self.head(hidden(ids, mask))

    def _prefix_of(
        self, ids: torch.Tensor, mask: torch.Tensor, keys: list[Key], lengths: list[int], start: int
    ) -> torch.Tensor:
        # This batch's rows are held here while it is served: storing one may evict another.
        rows: dict[Key, torch.Tensor] = {}
        for k in keys:
            found = self._store.get((start, k))
            if found is not None:
                rows[k] = found
        missing = list({k: i for i, k in enumerate(keys) if k not in rows}.values())
        if missing:
            width = max(lengths[i] for i in missing)
            hidden = self._below(ids[missing, :width], mask[missing, :width], start)
            for j, i in enumerate(missing):
                rows[keys[i]] = hidden[j, : lengths[i]].clone()
                self._store.put((start, keys[i]), rows[keys[i]])
            self.computed += len(missing)
        return _stack([rows[k] for k in keys], ids.shape[1])

    def _below(self, ids: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """The hidden states entering layer `start` (the final norm's input when start = n_layers)."""
        target = self.decoder.layers[start] if start < self.n_layers else self.decoder.norm

        def stop(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            raise _Stop(args[0] if args else kwargs["hidden_states"])

        handle = target.register_forward_pre_hook(stop, with_kwargs=True)
        try:
            self.decoder(input_ids=ids, attention_mask=mask, use_cache=False)
        except _Stop as s:
            return s.hidden
        finally:
            handle.remove()
        raise RuntimeError(f"the decoder never reached layer {start}")

    def _top(self, hidden: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """Layers start.. and the final norm on `hidden` (the decoder's layer list cut for the call)."""
        layers = self.decoder.layers
        self.decoder.layers = layers[start:]
        try:
            out = self.decoder(inputs_embeds=hidden, attention_mask=mask, use_cache=False)
        finally:
            self.decoder.layers = layers
        return out.last_hidden_state

    def _check(self, ids: torch.Tensor, mask: torch.Tensor, final: torch.Tensor, lengths: list[int]) -> None:
        """The model's own full forward (token ids, every layer, its own head) against `final` through
        the head, on each row's real tokens."""
        full = self.base(input_ids=ids, attention_mask=mask, use_cache=False).logits
        for i in range(len(ids)):
            n = lengths[i]
            diff = (full[i, :n].float() - self.head(final[i, :n]).float()).abs().max().item()
            if not diff <= CHECK_ATOL:
                raise PrefixMismatch(
                    f"prefix cache: logits differ from the full forward by {diff:.2e} (> {CHECK_ATOL:g})"
                )


def _right_padded(mask: torch.Tensor) -> list[int]:
    """Each row's length; ValueError unless every row is ones then zeros (right padding)."""
    lengths = mask.sum(dim=1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device)[None, :]
    if not torch.equal(mask.bool(), positions < lengths):
        raise ValueError("the prefix cache needs right padding (ones, then zeros)")
    return [int(n) for n in lengths.squeeze(1).tolist()]


def _stack(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """Rows of (length, hidden) -> (batch, width, hidden), zeros after each row's length."""
    out = rows[0].new_zeros(len(rows), width, rows[0].shape[-1])
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out
