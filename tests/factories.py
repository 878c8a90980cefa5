"""Test adapters: re-exported from registry.synthetic (shared with `pemreg demo`)."""

from registry.synthetic import (  # noqa: F401
    BASE_NAME,
    IA3_TARGETS,
    LORA_TARGETS,
    make_ia3,
    make_lora,
    save_tiny_base,
    tiny_model,
)
