"""#19.2: a lambda search's applied weights and its candidates, from the run's one typed record, on every
surface: the service view, REST, the Python client, `pemreg compositions show` and the web page. The
expected values come from provenance.json (written by the flow) and from the spec as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from flows.compose import compose_flow
from registry import service
from registry.client import Client
from registry.service.admin.keys import create_key
from registry.service.compositions import reads as compositions
from registry.spec import load_spec
from tests.flow_fixtures import World, settings_env
from tests.reliability.live_server import serve
from tests.web.conftest import sign_in

WRITTEN = -0.2  # the weight the spec writes for t/b; the search tries the list below


def test_search_applied_weights_and_candidates_on_every_surface(world: World, tmp_path: Path) -> None:
    spec = (
        f"name: t/applied\nexpression: 't/a@1 - 0.2 * t/b'\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{world.ppl_data}'}}\n"
        f"search:\n  strategy: grid\n  weights: {{t/b: [-0.6, -1.0]}}\n"
        f"  objective: {{evaluation: ppl, goal: minimize}}\n"
    )
    result = compose_flow(load_spec(spec).canonical())
    assert result["status"] == "succeeded", result
    service.download_version(world.reg, "t/applied@1", tmp_path / "out")
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())["search"]
    winner = next(c for c in prov["candidates"] if c["index"] == prov["winner"])
    applied_b = winner["weights"]["t/b"]
    assert applied_b in (-0.6, -1.0) and applied_b != WRITTEN
    expected_inputs = [("t/a", 1.0, 1.0), ("t/b", WRITTEN, applied_b)]
    expected_candidates = sorted(
        (c["index"], c["weights"]["t/b"], c["gates_passed"]) for c in prov["candidates"]
    )

    # The service view (what every shell reads).
    view = compositions.get(world.reg, result["id"])
    assert [(i.name, i.weight, i.applied_weight) for i in view.inputs] == expected_inputs
    assert view.search is not None and view.search.winner == prov["winner"]
    assert sorted((c.index, c.weights["t/b"], c.passes_gates) for c in view.search.candidates) == (
        expected_candidates
    )
    # The lineage edge agrees with the applied weight (it always did; the view now does too).
    edges = {e.parent: e.weight for e in service.lineage(world.reg, "t/applied@1").edges}
    assert edges["t/b@1"] == applied_b

    key = create_key(world.reg, "applied-reader", "reader")
    with serve(world.reg.settings) as url:
        answer = httpx.get(
            f"{url}/v1/compositions/{result['id']}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        rest = answer.json()
        assert [(i["name"], i["weight"], i["applied_weight"]) for i in rest["inputs"]] == expected_inputs
        assert rest["search"]["winner"] == prov["winner"]
        assert len(rest["search"]["candidates"]) == len(prov["candidates"])
        typed = Client(url, key).get_composition(result["id"])
        assert [(i.name, i.weight, i.applied_weight) for i in typed.inputs] == expected_inputs
        assert typed.search is not None
        assert sorted((c.index, c.weights["t/b"], c.passes_gates) for c in typed.search.candidates) == (
            expected_candidates
        )

    shown = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "compositions", "show", result["id"]],
        env={**os.environ, **settings_env(world.reg), "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.count("│") >= 4}
    assert re.search(rf"│\s*{WRITTEN:+g}\s*│\s*{applied_b:+g}\s*│", rows["t/b@1"]), shown.stdout
    assert f"{len(prov['candidates'])} candidates, winner #{prov['winner']}" in shown.stdout
    for c in prov["candidates"]:
        assert re.search(rf"│\s*{c['index']}\s*│\s*{c['weights']['t/b']:+g}\s*│", shown.stdout), shown.stdout

    with TestClient(create_app(world.reg.settings), follow_redirects=False) as web:
        sign_in(web, key)
        page = web.get(f"/compositions/{result['id']}")
        assert page.status_code == 200
        inputs_table = page.text.split('id="inputs"')[1].split("</table>")[0]
        assert f"{WRITTEN:+g}</td>" in inputs_table and f"{applied_b:+g} <span" in inputs_table
        search_table = page.text.split('id="search"')[1].split("</table>")[0]
        assert search_table.count("<tr") == len(prov["candidates"]) + 1  # header + one per candidate
        assert search_table.count("winner</span>") == 1
