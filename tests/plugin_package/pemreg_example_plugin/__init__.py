"""A method plugin as the contract shows one: one function, declared with @dense_method."""

from registry.compose.methods import dense_method


@dense_method(pem_types=("lora", "ia3"), params={"factor": 1.0})
def example_scaled_sum(deltas, *, factor):  # type: ignore[no-untyped-def]
    """factor * sum_i T_i (a control: the weighted sum scaled to a chosen norm)."""
    return factor * sum(deltas)
