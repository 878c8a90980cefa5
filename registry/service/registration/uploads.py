"""Registration from an HTTP upload, without a web framework: a multipart body is streamed into a
temporary adapter folder (size-limited, sha256 computed while the bytes arrive), then registered by
`register_adapter` like a folder on disk, so validation and idempotency are the CLI's exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

from registry.base_evidence import BaseEvidence
from registry.errors import InvalidInput, NotFound, StoreError
from registry.refs import SHA256_RE
from registry.service.context import Registry, open_store_for
from registry.service.registration.register import parse_tags, register_adapter
from registry.sources import SourceAccess, local_folder
from registry.training import parse_training
from registry.views import VersionView

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# Multipart file fields -> the PEFT file each one becomes. `readme` is the user's model card, kept
# byte-identical beside the registry's MODEL_CARD.md (as a local registration keeps it).
FILE_FIELDS = {"config": "adapter_config.json", "weights": "adapter_model.safetensors", "readme": "README.md"}
REQUIRED_FILES = ("config", "weights")
TEXT_FIELDS = (
    "name",
    "base_model",
    "task",
    "tags",
    "description",
    "sha256",
    # What the client found in the folder the adapter config's base path names (registry.base_evidence).
    "base_config_sha256",
    "base_weights_sha256",
    "base_architecture",
    "create_base",
    "allow_deleted",
    "metrics",
    "params",
    "datasets",
)
MAX_TEXT_BYTES = 64 * 1024  # per text field: names, tags and descriptions are small
# The whole form's text (held in memory until registration) and its number of parts: a body of
# thousands of 60 KB `tags` fields is refused at the first field over, not after it was all read.
MAX_FORM_TEXT_BYTES = 256 * 1024
MAX_PARTS = 128
MAX_CONFIG_BYTES = 1024 * 1024  # adapter_config.json is a few KB; refuse anything absurd early
MAX_README_BYTES = 4 * 1024 * 1024  # a model card: text and a few tables
HEADER_SLACK = 1024 * 1024  # multipart boundaries and headers on top of the file bytes


def multipart_limit(settings: Any) -> int:
    """The largest multipart body an upload may send: the weights, the config and the form around them."""
    return int(settings.max_upload_bytes) + MAX_CONFIG_BYTES + HEADER_SLACK + MAX_FORM_TEXT_BYTES


class SourceNotFound(NotFound):
    """A well-formed source URI naming nothing this server can read (HTTP 404, like any unknown name)."""

    field = "source"


class UploadTooLarge(InvalidInput):
    """The upload exceeds settings.max_upload_bytes (HTTP 413)."""


@dataclass
class ReceivedFile:
    path: Path
    sha256: str
    size: int


@dataclass
class ReceivedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, ReceivedFile] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        values = self.fields.get(name) or []
        if len(values) > 1:
            raise InvalidInput(f"{name}: given {len(values)} times; give it once", field=name)
        # Not stripped: `rel/abc\n` must be refused as a name, not quietly become `rel/abc`.
        return values[0] if values and values[0].strip() else None


class MultipartReceiver:
    """Feed it the body chunk by chunk; file parts go straight to `folder` with their digest."""

    def __init__(self, content_type: str, folder: Path, max_bytes: int) -> None:
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInput("body: expected multipart/form-data with a boundary", field="body")
        self.folder, self.max_bytes = folder, max_bytes
        self.form = ReceivedForm()
        self.received = 0
        self.parts = 0
        self.text_bytes = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._part: str | None = None
        self._text = bytearray()
        self._file: IO[bytes] | None = None
        self._digest: Any = None
        self._size = 0
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_part_data": self._data,
                "on_part_end": self._end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    # -- parser callbacks -----------------------------------------------------------------------
    def _begin(self) -> None:
        self._disposition, self._part, self._size = b"", None, 0
        self._text = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"body: more than {MAX_PARTS} form fields", field="body")
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name in FILE_FIELDS:
            if name in self.form.files:
                raise InvalidInput(f"{name}: given twice; send one file", field=name)
            self._file = open(self.folder / FILE_FIELDS[name], "xb")  # noqa: SIM115 - closed in _end
            self._digest = hashlib.sha256()
        elif name not in TEXT_FIELDS:
            known = ", ".join([*FILE_FIELDS, *TEXT_FIELDS])
            label = name or "part"
            raise InvalidInput(f"{label}: unknown form field (expected {known})", field=name or "body")
        self._part = name

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        self._size += len(chunk)
        if self._file is not None:
            limit = {"config": MAX_CONFIG_BYTES, "readme": MAX_README_BYTES}.get(
                self._part or "", self.max_bytes
            )
            if self._size > limit:
                raise UploadTooLarge(
                    f"{self._part}: larger than the limit of {limit} bytes", field=self._part
                )
            self._file.write(chunk)
            self._digest.update(chunk)
        else:
            if self._size > MAX_TEXT_BYTES:
                raise InvalidInput(f"{self._part}: longer than {MAX_TEXT_BYTES} bytes", field=self._part)
            self.text_bytes += len(chunk)
            if self.text_bytes > MAX_FORM_TEXT_BYTES:
                raise UploadTooLarge(
                    f"{self._part}: the form's text fields exceed {MAX_FORM_TEXT_BYTES} bytes in all",
                    field=self._part,
                )
            self._text += chunk

    def _end(self) -> None:
        assert self._part is not None
        if self._file is not None:
            self._file.close()
            self._file = None
            self.form.files[self._part] = ReceivedFile(
                self.folder / FILE_FIELDS[self._part], self._digest.hexdigest(), self._size
            )
        else:
            try:
                text = self._text.decode()
            except UnicodeDecodeError:
                raise InvalidInput(f"{self._part}: not UTF-8 text", field=self._part) from None
            self.form.fields.setdefault(self._part, []).append(text)

    # -- driving --------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes + MAX_CONFIG_BYTES + HEADER_SLACK:
            raise UploadTooLarge(
                f"body: larger than the upload limit of {self.max_bytes} bytes", field="body"
            )
        self._call(self._parser.write, chunk)

    def finish(self) -> ReceivedForm:
        self._call(self._parser.finalize)
        if self._part is not None and self._file is not None:
            raise InvalidInput("body: the multipart body ends inside a part", field="body")
        return self.form

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except InvalidInput:
            self.close()
            raise
        except Exception as exc:  # the parser's own errors: the body is not valid multipart
            self.close()
            raise InvalidInput(f"body: malformed multipart data ({exc})", field="body") from None


def register_upload(
    reg: Registry, form: ReceivedForm, notify: Callable[[str], None] | None = None
) -> tuple[VersionView, bool]:
    """Register the folder a MultipartReceiver filled. Returns (version, created)."""
    name = form.one("name")
    if not name:
        raise InvalidInput("name: required (namespace/name)", field="name")
    for part in REQUIRED_FILES:
        if part not in form.files:
            raise InvalidInput(f"{part}: file missing ({FILE_FIELDS[part]})", field=part)
    expected = form.one("sha256")
    weights = form.files["weights"]
    if expected and expected.lower().removeprefix("sha256:") != weights.sha256:
        raise InvalidInput(
            f"weights: sha256 is {weights.sha256}, not {expected} as the sha256 field says", field="weights"
        )
    tags = parse_tags(form.fields.get("tags"), field="tags")
    base_model, task = form.one("base_model"), form.one("task")
    training = parse_training(
        form.fields.get("metrics"), form.fields.get("params"), form.fields.get("datasets")
    )
    return register_adapter(
        reg,
        weights.path.parent,
        name,
        base_model=base_model,
        task=task,
        tags=tags,
        description=form.one("description"),
        trigger="api",
        notify=notify,
        evidence=form_evidence(form),
        create_base=form_flag(form, "create_base"),
        allow_deleted=form_flag(form, "allow_deleted"),
        training=training,
        known_digests={FILE_FIELDS[part]: received.sha256 for part, received in form.files.items()},
    )


def form_flag(form: ReceivedForm, name: str) -> bool:
    value = (form.one(name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidInput(f"{name}: true or false", field=name)
    return value in ("true", "1")


def form_evidence(form: ReceivedForm) -> BaseEvidence | None:
    """The client's base evidence; None when it sent none (its config's base path is no folder there)."""
    found = {}
    for name in ("base_config_sha256", "base_weights_sha256"):
        value = form.one(name)
        if value is not None and not SHA256_RE.fullmatch(value):
            raise InvalidInput(f"{name}: 64 lowercase hex digits", field=name)
        found[name] = value
    if not any(found.values()):
        return None
    architecture = form.one("base_architecture")
    if architecture is not None and (len(architecture) > 128 or CONTROL_RE.search(architecture)):
        raise InvalidInput(
            "base_architecture: at most 128 characters, no control characters", field="base_architecture"
        )
    return BaseEvidence(
        config_sha256=found["base_config_sha256"],
        weights_sha256=found["base_weights_sha256"],
        architecture=architecture,
    )


def check_source(reg: Registry, source: str) -> None:
    """A client-given adapter folder: first the source policy of the caller (the registry's store and
    PEMREG_SOURCE_ROOTS, s3:// or local; one refusal text, 422, whether or not it exists), then whether
    it holds anything (a well-formed source naming nothing is 404, like any unknown object)."""
    SourceAccess.for_principal(reg.settings, reg.acting.kind).check(source, "source")
    if not source.startswith("s3://"):
        folder = local_folder(source)
        if folder is None or not folder.is_dir():
            raise SourceNotFound(f"source: nothing found under {source}")
        return
    try:
        keys = open_store_for(reg.settings, source.rstrip("/")).list_keys("")
    except (StoreError, ValueError) as exc:
        raise SourceNotFound(f"source: cannot read {source}: {exc}") from None
    if not keys:
        raise SourceNotFound(f"source: nothing found under {source}")
