"""registry.client's compositions against a live `pemreg serve` (PostgreSQL + SeaweedFS, the embedded
Prefect mode with a warm local Prefect server): compose -> wait -> output, lineage and listing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from registry import service
from registry.client import Client, InvalidInput
from tests.factories import make_lora, save_tiny_base
from tests.live_server import Server, run_server
from tests.s3_service import S3Service


@pytest.fixture(scope="module")
def compose_server(
    pg_url: str,
    s3_service: S3Service,
    warm_home: tuple[Path, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    home, port = warm_home
    yield from run_server(
        pg_url,
        s3_service,
        tmp_path_factory.mktemp("compose-server"),
        home=home,
        test_bases=False,  # the test registers tiny-llama from a folder itself
        PEMREG_LOCAL_PREFECT_PORT=str(port),
        PEMREG_PREFECT_MODE="local-server",
    )


def test_compose_wait_and_follow_the_output(compose_server: Server, tmp_path: Path) -> None:
    reg = compose_server.reg
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
    a, b = make_lora(tmp_path / "a", seed=1), make_lora(tmp_path / "b", seed=2)
    with Client(compose_server.url, compose_server.keys["writer"]) as c:
        c.register(a, "cc/a")
        c.register(b, "cc/b")
        spec = "name: cc/ab\nmethod: delta_cat\nexpression: '0.25 * cc/a + 0.75 * cc/b'\n"
        started = c.compose(spec)
        assert started.status == "pending" and started.id
        seen: list[str] = []
        done = c.wait(started.id, timeout=240, poll=0.3, on_update=lambda v: seen.append(v.status))
        assert done.status == "succeeded", done.error
        assert seen[-1] == "succeeded"
        assert done.output is not None and (done.output.name, done.output.version) == ("cc/ab", 1)
        assert [x.id for x in c.list_compositions(status="succeeded")] == [started.id]
        assert c.get_composition(started.id).status == "succeeded"
        edges = {(e.parent, e.operator, e.weight) for e in c.lineage("cc/ab@1").edges}
        assert edges == {("cc/a@1", "delta_cat", 0.25), ("cc/b@1", "delta_cat", 0.75)}

        # The downloaded result is the exact weighted sum of the inputs' deltas (delta_cat), checked on
        # one module with s_i = alpha_i / r_i read from each adapter_config.json.
        out = tmp_path / "out"
        c.download("cc/ab@1", out)

        def delta(folder: Path, key_a: str) -> torch.Tensor:
            cfg = json.loads((folder / "adapter_config.json").read_text())
            w = load_file(folder / "adapter_model.safetensors")
            key_b = key_a.replace("lora_A", "lora_B")
            return (cfg["lora_alpha"] / cfg["r"]) * w[key_b].double() @ w[key_a].double()

        key = next(k for k in load_file(a / "adapter_model.safetensors") if "lora_A" in k)
        expected = 0.25 * delta(a, key) + 0.75 * delta(b, key)
        assert torch.allclose(delta(out, key), expected, atol=1e-5)

        with pytest.raises(InvalidInput):
            c.compose({"name": "cc/bad", "expression": "cc/a +"})
