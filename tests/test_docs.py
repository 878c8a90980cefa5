"""The project's docs stand alone: links resolve inside the repo, nothing points outside it, and the
spec and CLI references cover every field and command the code has."""

from __future__ import annotations

import re
import subprocess
import typing
from pathlib import Path
from typing import Any

import pydantic
import typer

from api.cli.main import app
from registry.spec.model import CompositionSpec

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# Spelled in pieces so this file does not match itself.
OUTSIDE = ("../" + "shared", "/work/" + "shared", "PRODUCT" + ".md")


def test_every_relative_link_resolves_inside_the_repo() -> None:
    checked = 0
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # http(s)://, mailto:, in-page anchors
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
            assert path.exists(), f"{doc.name}: {target} does not exist"
            checked += 1
    assert checked >= 10  # the README and docs do link to each other


def _project_files() -> list[Path]:
    """Tracked files (plus new ones not yet ignored); without git, every file outside build output."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.SubprocessError):
        parts = lambda p: set(p.relative_to(ROOT).parts)  # noqa: E731
        return [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not SKIP_DIRS & parts(p) and not any(x.endswith(".egg-info") for x in parts(p))
        ]


def test_no_file_refers_to_documents_outside_the_repo() -> None:
    offenders = []
    for path in _project_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary
        offenders += [f"{path.relative_to(ROOT)}: {needle}" for needle in OUTSIDE if needle in text]
    assert offenders == []


def _models(model: type[pydantic.BaseModel]) -> list[type[pydantic.BaseModel]]:
    """The model and every model nested in its fields (lists, optionals included)."""
    found = [model]
    for info in model.model_fields.values():
        for arg in _leaves(info.annotation):
            if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel) and arg not in found:
                found += [m for m in _models(arg) if m not in found]
    return found


def _leaves(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [leaf for arg in args for leaf in _leaves(arg)]


def _from_a_plugin(method: Any) -> bool:
    from registry.compose.methods import get_method

    declared = get_method(method) if isinstance(method, str) else None
    return declared is not None and declared.provider != "pemreg"


def test_spec_reference_documents_every_field_and_choice() -> None:
    text = (ROOT / "docs" / "spec.md").read_text()
    missing = []
    for model in _models(CompositionSpec):
        for name, info in model.model_fields.items():
            if f"`{name}`" not in text:
                missing.append(f"{model.__name__}.{name}")
            for leaf in _leaves(info.annotation):  # Literal choices: methods, strategies, kinds, ...
                if name in ("method", "methods") and _from_a_plugin(leaf):
                    continue  # a plugin documents its own methods (the test environment installs one)
                if isinstance(leaf, str) and f"`{leaf}`" not in text and f"{name}: {leaf}" not in text:
                    missing.append(f"{model.__name__}.{name} = {leaf}")
    assert len(_models(CompositionSpec)) >= 7
    assert missing == []


def _commands(command: Any, path: str = "") -> list[tuple[str, Any]]:
    out = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        out += _commands(sub, f"{path} {name}".strip())
    return out


def test_cli_reference_documents_every_command_and_option() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    commands = _commands(typer.main.get_command(app))
    missing = []
    for path, command in commands:
        if path and not re.search(rf"pemreg {re.escape(path)}(?![\w-])", text):
            missing.append(f"pemreg {path}")
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else []:
                if opt.startswith("--") and opt != "--help" and opt not in text:
                    missing.append(f"pemreg {path} {opt}".replace("  ", " "))
    assert len(commands) > 20
    assert missing == []


def test_readme_documents_every_setting() -> None:
    from registry.settings import Settings

    text = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`PEMREG_{name.upper()}`" not in text]
    assert missing == [], missing


def test_spec_reference_states_the_grammar_and_the_bounds_the_code_has() -> None:
    """docs/spec.md's grammar table and expression bounds are the values in registry/refs.py and
    registry/spec/expression.py (the old page promised an alias pattern the catalog refused)."""
    from registry import refs
    from registry.cron import MAX_CRON_CHARS
    from registry.spec import expression as ex

    text = (ROOT / "docs" / "spec.md").read_text()
    stated = [
        f"`^{refs.NAMESPACE_PATTERN}$`",
        f"name `^{refs.NAME_PART_PATTERN}$`",
        f"`^{refs.ALIAS_PATTERN}$`",
        f"`^{refs.ALIAS_GLOB_PATTERN}$`",
        f"{refs.SHA_PREFIX_MIN}-{refs.SHA_PREFIX_MAX} hex digits",
        f"1 to {refs.MAX_VERSION}",
        f"key 1-{refs.TAG_KEY_MAX} characters",
        f"value up to {refs.TAG_VALUE_MAX}",
        f"{ex.MAX_EXPRESSION_CHARS} characters",
        f"{ex.MAX_DEPTH} deep",
        f"| {ex.MAX_NUMBER_DIGITS} |",
        f"-{ex.MAX_EXPONENT} to {ex.MAX_EXPONENT}",
        f"{ex.MAX_BITS} bits",
        f"at most `{ex.MAX_WEIGHT_TEXT}` in magnitude",
        f"longer than {MAX_CRON_CHARS} characters",
    ]
    assert [s for s in stated if s not in text] == []
