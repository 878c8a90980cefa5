"""Adapters read one module at a time, and safetensors files written one module at a time.

Why not `load_file`: it holds a whole file in memory, and composing 32 adapters of an 8B model
would hold ~5 GB. Why not `safe_open(...).get_tensor`: it reads through a memory map that stays
open, and every page it touches stays in the process's resident set until the file is closed, so
peak RSS still grows with the bytes read. Here `safe_open` validates each file's header (the
library's checks), the data offsets come from the same header, and each tensor is read with one
`pread` into a fresh tensor: memory is what the caller still holds, nothing more.

`LazyAdapter.skeleton` is the adapter with shape-only ("meta") tensors: enough for every
compatibility check and for planning the output's header. `LazyAdapter.module(path)` reads one
module's tensors and runs the same per-type parse and NaN/Inf check as `read_adapter`.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from registry.errors import AdapterFormatError
from registry.pem.base import (
    PemAdapter,
    check_all_finite,
    check_tensor_kinds,
    dtype_name,
    kind_for_peft_type,
)
from registry.pem.io import WEIGHTS_NAME, read_config

# safetensors dtype names (the format's spec) <-> torch dtypes
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}
HEADER_SIZE = struct.Struct("<Q")


@dataclass(frozen=True)
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int  # absolute byte offset in the file
    nbytes: int


class TensorFile:
    """Random access to the tensors of one safetensors file, one `pread` per tensor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with safe_open(path, framework="pt") as handle:  # validates header and offsets
                keys = set(handle.keys())
            with path.open("rb") as raw:
                (size,) = HEADER_SIZE.unpack(raw.read(HEADER_SIZE.size))
                header = json.loads(raw.read(size))
        except Exception as exc:  # SafetensorError, OSError, bad JSON: the file is unreadable
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AdapterFormatError(f"{WEIGHTS_NAME}: unreadable safetensors file ({first_line})") from None
        start = HEADER_SIZE.size + size
        self.tensors: dict[str, TensorInfo] = {}
        for key in sorted(keys):
            entry = header[key]
            dtype = DTYPES.get(entry["dtype"])
            if dtype is None:
                raise AdapterFormatError(f"tensor {key!r}: unsupported dtype {entry['dtype']}")
            begin, end = entry["data_offsets"]
            shape = tuple(int(n) for n in entry["shape"])
            self.tensors[key] = TensorInfo(dtype, shape, start + begin, end - begin)
        self._fd: int | None = None

    def meta(self) -> dict[str, torch.Tensor]:
        """Shape-and-dtype-only tensors: no data is read or allocated."""
        return {k: torch.empty(t.shape, dtype=t.dtype, device="meta") for k, t in self.tensors.items()}

    def read(self, key: str) -> torch.Tensor:
        info = self.tensors[key]
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = torch.empty(info.nbytes, dtype=torch.uint8)
        done = os.preadv(self._fd, [out.numpy().data], info.offset) if info.nbytes else 0
        if done != info.nbytes:
            raise AdapterFormatError(f"{WEIGHTS_NAME}: tensor {key!r} is truncated")
        return out.view(info.dtype).reshape(info.shape)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LazyAdapter:
    """An adapter folder whose modules are read on demand (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        config = read_config(self.folder)
        kind = kind_for_peft_type(config.get("peft_type"))
        kind.check_config(config)
        weights = self.folder / WEIGHTS_NAME
        if not weights.is_file():
            raise AdapterFormatError(f"{WEIGHTS_NAME} not found in {self.folder}")
        self.file = TensorFile(weights)
        if not self.file.tensors:
            raise AdapterFormatError(f"{WEIGHTS_NAME}: no tensors")
        check_tensor_kinds(self.file.meta())  # dtype and empty dimensions, from the header alone
        first = next(iter(self.file.tensors.values()))
        self.skeleton = PemAdapter(
            pem_type=kind.pem_type,
            config=config,
            modules=kind.parse(config, self.file.meta()),
            dtype=dtype_name(first.dtype),
        )
        # which file keys make up each module: the kind's own inverse of parse, on the skeleton
        self.keys = {p: list(kind.to_tensors({p: m})) for p, m in self.skeleton.modules.items()}

    def module(self, path: str) -> Any:
        """Read one module and validate it like `read_adapter` does (parse, then NaN/Inf)."""
        tensors = {k: self.file.read(k) for k in self.keys[path]}
        module = self.skeleton.kind.parse(self.skeleton.config, tensors)[path]
        check_all_finite(tensors)
        return module

    def close(self) -> None:
        self.file.close()


@contextmanager
def open_adapters(folders: list[str | os.PathLike[str]]) -> Iterator[list[LazyAdapter]]:
    opened: list[LazyAdapter] = []
    try:
        for folder in folders:
            opened.append(LazyAdapter(folder))
        yield opened
    finally:
        for adapter in opened:
            adapter.close()


class IncrementalWriter:
    """A safetensors file written in the order of `plan` (key -> shape-only tensor).

    The header needs every tensor's size up front, so the caller plans the output's shapes first;
    data is then appended as it is computed and checked against the plan. The file appears under
    its name only when complete (`commit`), so a failure leaves nothing half-written.
    """

    def __init__(self, path: Path, plan: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.pending = [(k, t.dtype, tuple(t.shape)) for k, t in plan.items()]
        header: dict[str, Any] = {"__metadata__": metadata}
        offset = 0
        for key, dtype, shape in self.pending:
            end = offset + math.prod(shape) * dtype.itemsize
            header[key] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [offset, end]}
            offset = end
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
        self._next = 0
        self._file = self.partial.open("wb")
        self._file.write(HEADER_SIZE.pack(len(raw)) + raw)

    def write(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for key, tensor in tensors.items():
            want = self.pending[self._next] if self._next < len(self.pending) else None
            got = (key, tensor.dtype, tuple(tensor.shape))
            if want != got:
                raise RuntimeError(f"output tensor {got} does not follow the planned header ({want})")
            data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            self._file.write(data.numpy().data)
            self._next += 1

    def commit(self) -> Path:
        if self._next != len(self.pending):
            raise RuntimeError(f"{len(self.pending) - self._next} planned tensors were not written")
        self._file.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self._file.close()
        self.partial.unlink(missing_ok=True)
