"""How close the domain-transfer setting (P8) came to moving any item: per validation and test item of
`tone` in the target domain (code), the margin log p(correct label) - log p(other label) of
`tone-prose + c (code-a - prose)` for each c the demo's search tries, from the registered adapters.

Why: the full run's search saw validation accuracy 60% at every c, so it chose c = 0 and P8 could not
hold. Either the domain vector moves no item's margin (too weak at c <= 0.4), or it moves margins
without crossing zero (items far from the boundary), or it moves them both ways. The claim this script
tests, stated before its first run: the margin shift at c = 0.4 is small against the items' margins at
c = 0 (median |shift| under a tenth of the median |margin|), which would make the flat accuracy a
property of the vector's size, not of the search.

The arithmetic is written here (W + s_t B_t A_t + c s_d B_d A_d per module, float64 product), not the
product's; scores are summed log-probabilities of each label's tokens after the item's text (the
continuation tokenised with its context as one string, as the product's `accuracy` does).

    .venv/bin/python benchmarks/demo_real_transfer_margins.py --home ~/.pemreg            # full run
    .venv/bin/python benchmarks/demo_real_transfer_margins.py --home ~/.pemreg --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from registry.demo.real import plan
from registry.evaluation.tokens import tokenizer_for
from registry.pem import read_adapter
from registry.service import Registry, download_version
from registry.settings import Settings

OUTSIDE = (1.0, 2.0)  # c outside the demo's grid, printed as "(outside the grid)"


def _scores(model, tok, rows: list[dict]) -> list[float]:  # type: ignore[no-untyped-def]
    """Per row: score(correct) - max score(other choice)."""
    out = []
    for row in rows:
        context = row["text"].rstrip(" ")
        head = tok.encode(context)
        scores = {}
        for choice in row["choices"]:
            whole = tok.encode(context + " " + choice)
            n = next((j for j, (a, b) in enumerate(zip(head, whole, strict=False)) if a != b), len(head))
            ids = torch.tensor([whole])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            scores[choice] = float(sum(logp[j - 1, whole[j]] for j in range(n, len(whole))))
        other = max(v for c, v in scores.items() if c != row["label"])
        out.append(scores[row["label"]] - other)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="the demo's PEMREG_HOME")
    ap.add_argument("--quick", action="store_true", help="the quick run's report folder")
    args = ap.parse_args()
    grid = plan.QUICK_TRANSFER_SCALES if args.quick else plan.TRANSFER_SCALES
    # beyond the search's grid, as a control: does the vector move accuracy at any size, and which way
    cs = grid + tuple(c for c in OUTSIDE if c not in grid)
    out_dir = args.home / ("demo-real-quick" if args.quick else "demo-real")
    result = json.loads((out_dir / "results.json").read_text())
    reg = Registry(Settings(home=args.home))
    from transformers import AutoModelForCausalLM

    base_folder = Path(result["base_folder"])
    model = AutoModelForCausalLM.from_pretrained(base_folder).eval()
    tok = tokenizer_for(base_folder, int(model.config.vocab_size))
    with tempfile.TemporaryDirectory() as tmp:
        adapters = {}
        for name in ("tone-prose", "domain-vector"):
            folder = Path(tmp) / name
            download_version(reg, f"real/{name}@latest", folder)
            adapters[name] = read_adapter(folder)
    weights = {p: model.get_submodule(p).weight.data.clone() for p in adapters["tone-prose"].modules}
    weights |= {p: model.get_submodule(p).weight.data.clone() for p in adapters["domain-vector"].modules}
    splits = {
        "val": [
            json.loads(x)
            for x in (out_dir / "data" / "tasks" / "val-tone-code.jsonl").read_text().splitlines()
        ],
        "test": [
            json.loads(line)
            for f in sorted((out_dir / "data" / "tasks" / "tone-code").glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ],
    }
    margins: dict[float, dict[str, list[float]]] = {}
    with torch.inference_mode():
        for c in cs:
            for p, w in weights.items():
                delta = torch.zeros_like(w, dtype=torch.float64)
                for name, times in (("tone-prose", 1.0), ("domain-vector", c)):
                    m = adapters[name].modules.get(p)
                    if m is not None:
                        delta += times * m.scale * (m.B.double() @ m.A.double())
                model.get_submodule(p).weight.data = (w.double() + delta).to(w.dtype)
            margins[c] = {s: _scores(model, tok, rows) for s, rows in splits.items()}
    for split in splits:
        m0 = margins[0.0][split]
        print(f"{split}: {len(m0)} items, median |margin| at c=0 {statistics.median(abs(x) for x in m0):.3f}")
        print("| c | accuracy | mean margin | median |shift| vs c=0 | max |shift| | items flipped vs c=0 |")
        print("|---|---|---|---|---|---|")
        for c in cs:
            m = margins[c][split]
            shift = [abs(a - b) for a, b in zip(m, m0, strict=True)]
            flipped = sum((a > 0) != (b > 0) for a, b in zip(m, m0, strict=True))
            label = f"{c:g}" if c in grid else f"{c:g} (outside the grid)"
            accuracy = sum(x > 0 for x in m) / len(m)
            print(
                f"| {label} | {accuracy:.2f} | {statistics.mean(m):+.3f} | "
                f"{statistics.median(shift):.3f} | {max(shift):.3f} | {flipped} |"
            )
        top = grid[-1]
        reach = max(abs(a - b) for a, b in zip(margins[top][split], m0, strict=True))
        near = sum(abs(x) < reach for x in m0)
        print(f"items whose |margin| at c=0 is below the largest shift at c={top:g}: {near}\n")


if __name__ == "__main__":
    main()
