"""`pemreg demo`: the catalog end to end on the embedded default, with adapters peft makes on the fly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import service
from .synthetic import BASE_NAME, make_ia3, make_lora, save_tiny_base

DEMO_ADAPTERS = [
    ("demo/math", "lora", "math", 11),
    ("demo/medicine", "lora", "medicine", 12),
    ("demo/style", "ia3", "style", 13),
]


def run_demo(reg: service.Registry, workdir: Path, say: Callable[[str], None]) -> None:
    base_dir = reg.settings.home / "demo" / "tiny-llama"  # stable, so re-runs find the same base source
    if not (base_dir / "config.json").exists():
        save_tiny_base(base_dir, "llama")
    base, _ = service.add_base_model(reg, BASE_NAME["llama"], source=str(base_dir))
    say(f"base model {base.name}@{base.revision} ({base.architecture}) from {base.source}")
    for name, kind, task, seed in DEMO_ADAPTERS:
        folder = workdir / name.replace("/", "-")
        if kind == "lora":
            make_lora(folder, arch="llama", seed=seed, r=4, alpha=8)
        else:
            make_ia3(folder, arch="llama", seed=seed)
        version, created = service.register_adapter(
            reg,
            folder,
            name,
            task=task,
            tags={"origin": "demo"},
            description=f"demo {kind} adapter for {task}",
        )
        state = "registered" if created else "already registered"
        say(f"{state} {version.name}@{version.version} ({version.pem_type}, sha256:{version.sha256[:12]})")
    version = service.set_alias(reg, "demo/math@1", "prod")
    say(f"alias demo/math@prod -> version {version.version}")
    page = service.list_adapters(reg, tags={"origin": "demo"})
    say(f"catalog now lists {len(page.items)} demo adapters:")
    for a in page.items:
        say(f"  {a.name:<16} {a.pem_type:<5} task={a.task:<9} latest=v{a.latest_version}")
    found = service.find_by_digest(reg, version.sha256, with_ancestry=False)[0]
    say(f"audit sha256:{version.sha256[:12]}… -> {found.file} of {found.name}@{found.version}")
    say(f"catalog: {reg.settings.resolved_database_url}  store: {reg.settings.resolved_artifact_store}")
