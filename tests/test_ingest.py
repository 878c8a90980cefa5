"""PEFT ingestion: real peft adapters pass; every kind of corruption gets one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.errors import AdapterFormatError
from registry.hashing import sha256_file
from registry.ingest import ingest_folder


def _copy(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(src, dest)
    return dest


def test_lora_metadata_and_digest(adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    ing = ingest_folder(adapter_dirs["lora"], tmp_path)
    meta = ing.metadata
    assert meta["pem_type"] == "lora"
    assert meta["r"] == 4 and meta["lora_alpha"] == 8 and meta["use_rslora"] is False
    assert meta["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert meta["dtype"] == "float32"
    assert meta["base_model_name_or_path"] == "tiny-llama"
    assert ing.sha256 == sha256_file(adapter_dirs["lora"] / "adapter_model.safetensors")
    tensors = load_file(adapter_dirs["lora"] / "adapter_model.safetensors")
    assert meta["num_parameters"] == sum(t.numel() for t in tensors.values())


def test_ia3_metadata(adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    meta = ingest_folder(adapter_dirs["ia3"], tmp_path).metadata
    assert meta["pem_type"] == "ia3" and meta["r"] is None
    assert set(meta["target_modules"]) == {"k_proj", "v_proj", "down_proj"}


def test_bin_is_converted_with_weights_only(adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(adapter_dirs["lora"], tmp_path)
    tensors = load_file(folder / "adapter_model.safetensors")
    (folder / "adapter_model.safetensors").unlink()
    torch.save(tensors, folder / "adapter_model.bin")
    ing = ingest_folder(folder, tmp_path / "work")
    converted = load_file(ing.files["adapter_model.safetensors"].path)
    assert converted.keys() == tensors.keys()
    assert all(torch.equal(converted[k], tensors[k]) for k in tensors)


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - what a malicious pickle does
        return (print, ("pwned",))


def test_bin_with_arbitrary_pickle_is_refused(
    adapter_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(adapter_dirs["lora"], tmp_path)
    (folder / "adapter_model.safetensors").unlink()
    torch.save({"x": _Evil()}, folder / "adapter_model.bin")
    with pytest.raises(AdapterFormatError, match="refused"):
        ingest_folder(folder, tmp_path / "work")
    assert "pwned" not in capsys.readouterr().out


def _truncate(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def _bad_header(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:8] + b"{not json" + data[17:])


def _nan(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    tensors = load_file(path)
    key = sorted(tensors)[0]
    tensors[key][0, 0] = float("nan")
    save_file(tensors, path)


def _shape_mismatch(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    tensors = load_file(path)
    key = next(k for k in sorted(tensors) if "lora_A" in k)
    tensors[key] = torch.randn(3, tensors[key].shape[1])  # rank 3 where config says r=4
    save_file(tensors, path)


def _missing_config(folder: Path) -> None:
    (folder / "adapter_config.json").unlink()


def _unknown_type(folder: Path) -> None:
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["peft_type"] = "PREFIX_TUNING"
    (folder / "adapter_config.json").write_text(json.dumps(cfg))


def _dora(folder: Path) -> None:
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["use_dora"] = True
    (folder / "adapter_config.json").write_text(json.dumps(cfg))


CORRUPTIONS = {
    "truncated": (_truncate, "safetensors"),
    "bad-header": (_bad_header, "safetensors"),
    "nan": (_nan, "NaN"),
    "shape-mismatch": (_shape_mismatch, "rank"),
    "missing-config": (_missing_config, "adapter_config.json"),
    "unknown-type": (_unknown_type, "PREFIX_TUNING"),
    "dora": (_dora, "DoRA"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_adapter_gets_one_clear_error(
    kind: str, adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    corrupt, needle = CORRUPTIONS[kind]
    folder = _copy(adapter_dirs["lora"], tmp_path)
    corrupt(folder)
    with pytest.raises(AdapterFormatError) as err:
        ingest_folder(folder, tmp_path / "work")
    message = str(err.value)
    assert needle.lower() in message.lower()
    assert "\n" not in message
