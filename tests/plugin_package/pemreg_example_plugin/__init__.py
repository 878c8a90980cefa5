"""The declaration pemreg reads at start-up (no torch here: the rule is imported when it composes)."""

from registry.compose.methods import RANK, Method, Param

SCALED_SUM = Method(
    "example_scaled_sum",
    ("lora", "ia3"),
    "dense",
    "rank",
    (
        Param(
            "factor", "float", default=1.0, minimum=0, maximum=10, doc="multiplies the sum", where="params"
        ),
        RANK,
    ),
    summary="factor * sum_i w_i D_i (a control: the weighted sum scaled to a chosen norm)",
    rule="pemreg_example_plugin.rule:scaled_sum",
)
