"""`pemreg methods list [--json]`: the method table (the same list as GET /v1/methods)."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.compose.methods import BROKEN, RANK_RULES, all_methods

from .output import console, err_console, id_table, print_json, print_table

app = typer.Typer(help="Composition methods: the method table.", no_args_is_help=True)


@app.command("list")
def list_methods(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False,
) -> None:
    """Every method with its PEM types, parameters, input space, output rank and provider."""
    methods = all_methods()
    for broken in BROKEN:  # reported on stderr, so --json stays the table
        err_console.print(
            f"warning: method plugin {broken.entry_point} ({broken.distribution}) skipped: {broken.error}",
            markup=False,
            soft_wrap=True,
        )
    if json_out:
        print_json([m.to_dict() for m in methods])
        return
    table = id_table("method", "pem types", columns=("reads", "parameters", "provider"))
    for m in methods:
        params = "; ".join(p.describe().replace("`", "") for p in m.params) or "-"
        table.add_row(m.name, ",".join(m.pem_types), m.space, params, m.provider)
    print_table(table)
    for rule, text in RANK_RULES.items():
        names = ", ".join(m.name for m in methods if m.output_rank == rule)
        console.print(f"LoRA output rank {text}: {names}", markup=False)
