"""Method plugins (`pemreg.methods` entry points): the test environment installs tests/plugin_package,
one dense method (`example_scaled_sum`: factor * sum_i w_i D_i) in a package of its own. It joins the
table with its distribution as provider, composes over REST through the real flow (checked against the
formula written here), its parameters are checked from its declaration, provenance and the cache key
carry its provider, and a broken plugin is reported, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from registry import service
from registry.compose.methods import BROKEN, ENTRY_POINT_GROUP, get_method, load_plugins
from registry.errors import InvalidInput
from registry.service import Registry
from registry.spec import load_spec
from tests.factories import make_lora, save_tiny_base
from tests.test_api_common import Api, make_api

PROVIDER = "pemreg-example-plugin==0.3.1"


def test_the_installed_plugin_joins_the_table_with_its_provider() -> None:
    method = get_method("example_scaled_sum")
    assert method is not None and method.provider == PROVIDER
    assert [p.name for p in method.params] == ["factor", "rank"]
    listed = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "methods", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PEMREG_HOME": "/nonexistent"},
    )
    assert listed.returncode == 0, listed.stderr
    by_name = {m["name"]: m for m in json.loads(listed.stdout)}
    assert by_name["example_scaled_sum"]["provider"] == PROVIDER
    assert by_name["ties"]["provider"] == "pemreg"


def test_its_parameters_are_checked_from_its_declaration() -> None:
    base = "name: t/x\nexpression: t/a + t/b\nmethod: example_scaled_sum\n"
    assert load_spec(base + "params: {factor: 2.5}\n").params == {"factor": 2.5}
    with pytest.raises(InvalidInput, match=r"params.factor must be of type float") as exc:
        load_spec(base + "params: {factor: much}\n")
    assert exc.value.field == "params.factor"
    with pytest.raises(InvalidInput, match=r"takes no parameter 'gamma'"):
        load_spec(base + "params: {gamma: 0.1}\n")


def test_a_broken_plugin_is_reported_never_raised() -> None:
    before = len(BROKEN)
    bad = [
        EntryPoint("missing", "pemreg_no_such_module:X", ENTRY_POINT_GROUP),
        EntryPoint("not_a_method", "registry.compose.methods:RANK", ENTRY_POINT_GROUP),  # a Param
        EntryPoint("ties", "pemreg_example_plugin:example_scaled_sum", ENTRY_POINT_GROUP),  # a taken name
    ]
    assert load_plugins(bad) == []
    reported = BROKEN[before:]
    assert [b.entry_point.split(" = ")[0] for b in reported] == ["missing", "not_a_method", "ties"]
    assert "ModuleNotFoundError" in reported[0].error
    assert "not a function declared with @dense_method" in reported[1].error
    assert "already registered" in reported[2].error
    assert get_method("ties").provider == "pemreg"  # the first registration stands
    del BROKEN[before:]


@pytest.fixture
def capi(reg: Registry, warm_home: tuple[Path, int], tmp_path: Path) -> Api:
    home, port = warm_home
    settings = reg.settings.model_copy(
        update={"home": home, "local_prefect_port": port, "prefect_mode": "local-server"}
    )
    reg = Registry(settings)
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
    service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "p/a")
    service.register_adapter(reg, make_lora(tmp_path / "b", seed=2), "p/b")
    made = make_api(reg, settings)
    with made.client:
        yield made


def _deltas(folder: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(folder / "adapter_model.safetensors")
    config = json.loads((folder / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    out = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            out[key.removesuffix(".lora_A.weight")] = scale * (b.double() @ a.double())
    return out


def test_a_plugin_method_composes_over_rest(capi: Api, tmp_path: Path) -> None:
    spec = {
        "name": "p/scaled",
        "expression": "0.7 * p/a - 0.4 * p/b",
        "method": "example_scaled_sum",
        "rank": 16,  # the sum of two rank-8 deltas: the SVD keeps all of it
        "params": {"factor": 2.5},
    }
    r = capi.client.post("/v1/compositions", json=spec, headers=capi.h("writer"))
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while (body := capi.client.get(f"/v1/compositions/{r.json()['id']}", headers=capi.h("reader")).json())[
        "status"
    ] in ("pending", "running"):
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
    assert body["status"] == "succeeded", body
    assert body["cache_key"]
    for name in ("p/a", "p/b", "p/scaled"):
        service.download_version(capi.reg, f"{name}@1", tmp_path / name.replace("/", "_"))
    a, b, out = (_deltas(tmp_path / n) for n in ("p_a", "p_b", "p_scaled"))
    assert out.keys() == a.keys()
    for path in a:
        expected = 2.5 * (0.7 * a[path] - 0.4 * b[path])
        assert torch.allclose(out[path], expected, atol=1e-4 * float(expected.abs().max())), path
    provenance = json.loads((tmp_path / "p_scaled" / "provenance.json").read_text())
    assert provenance["method"]["name"] == "example_scaled_sum"
    assert provenance["method"]["provider"] == PROVIDER


def test_methods_list_reports_a_broken_plugin_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from api.cli.main import build

    before = len(BROKEN)
    load_plugins([EntryPoint("missing", "pemreg_no_such_module:X", ENTRY_POINT_GROUP)])
    monkeypatch.setenv("PEMREG_HOME", "/nonexistent")
    try:
        result = CliRunner().invoke(build("methods"), ["methods", "list", "--json"])
    finally:
        del BROKEN[before:]
    assert result.exit_code == 0
    assert "method plugin missing = pemreg_no_such_module:X" in result.stderr
    assert "ModuleNotFoundError" in result.stderr
    assert "example_scaled_sum" in {m["name"] for m in json.loads(result.stdout)}  # the table, whole


def test_a_program_that_imports_the_plugin_first_still_gets_it() -> None:
    """The plugin's module imports the table's; loading plugins at the table's import would meet the
    plugin half-built (it did: 'partially initialized module')."""
    code = (
        "import pemreg_example_plugin\n"
        "from registry.compose.methods import BROKEN, get_method\n"
        "print(get_method('example_scaled_sum').provider, len(BROKEN))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{PROVIDER} 0", done.stdout + done.stderr
