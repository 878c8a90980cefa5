"""Every compatibility error of issue 3 item 3, with the one-line message naming the problem."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from registry.compose import compose, interference_report
from registry.errors import IncompatibleAdapters, InvalidInput
from registry.pem import LoraModule, read_adapter
from tests.compose_helpers import library

Q0 = "model.layers.0.self_attn.q_proj"


def lora(name="l1"):
    return read_adapter(library()[name])


def with_config(adapter, **changes):
    clone = copy.copy(adapter)
    clone.config = {**adapter.config, **changes}
    return clone


def with_module(adapter, path, module):
    clone = copy.copy(adapter)
    clone.modules = {**adapter.modules, path: module}
    return clone


def test_pem_types_differ():
    with pytest.raises(IncompatibleAdapters, match="PEM types differ.*lora.*ia3"):
        compose([lora(), read_adapter(library()["i1"])], [1, 1])


def test_base_models_differ():
    other = with_config(lora("l2"), base_model_name_or_path="another-base")
    with pytest.raises(IncompatibleAdapters, match="base models differ.*tiny-llama.*another-base"):
        compose([lora(), other], [1, 1], "delta_cat")


def test_base_check_can_be_left_to_the_catalog():
    other = with_config(lora("l2"), base_model_name_or_path="/local/copy/of/tiny-llama")
    result = compose([lora(), other], [1, 1], "delta_cat", check_base_model=False)
    assert result.adapter.config["base_model_name_or_path"] == "tiny-llama"


def test_base_revision_differs():
    other = with_config(lora("l2"), revision="v2")
    with pytest.raises(IncompatibleAdapters, match="base models differ.*tiny-llama@v2"):
        compose([lora(), other], [1, 1], "delta_cat")


def test_module_shape_differs_names_the_module():
    x = lora("l2")
    m = x.modules[Q0]
    bad = with_module(x, Q0, LoraModule(A=m.A, B=torch.ones(48, m.r), alpha=m.alpha))
    with pytest.raises(IncompatibleAdapters, match=f"module '{Q0}': delta shapes differ"):
        compose([lora(), bad], [1, 1], "delta_cat")


def test_ia3_shape_differs_names_the_module():
    x = read_adapter(library()["i2"])
    path = "model.layers.0.mlp.down_proj"
    bad = with_module(x, path, dataclasses.replace(x.modules[path], l=torch.ones(1, 65)))
    with pytest.raises(IncompatibleAdapters, match=f"module '{path}': ia3_l shapes differ"):
        compose([read_adapter(library()["i1"]), bad], [1, 1])


def test_ranks_differ_under_linear():
    with pytest.raises(IncompatibleAdapters, match="ranks differ.*use delta_svd"):
        compose([lora(), lora("l_r8")], [1, 1], "linear")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_refused(value):
    x = lora("l2")
    m = x.modules[Q0]
    poisoned = m.B.clone()
    poisoned[0, 0] = value
    bad = with_module(x, Q0, LoraModule(A=m.A, B=poisoned, alpha=m.alpha))
    with pytest.raises(IncompatibleAdapters, match=f"input 1 module '{Q0}' lora_B contains NaN or Inf"):
        compose([lora(), bad], [1, 1], "delta_svd")


def test_dora_refused_with_reason():
    with pytest.raises(IncompatibleAdapters, match="DoRA.*magnitude"):
        compose([lora(), with_config(lora("l2"), use_dora=True)], [1, 1])


def test_differing_modules_to_save_refused():
    with pytest.raises(IncompatibleAdapters, match="modules_to_save differ"):
        compose([lora(), with_config(lora("l2"), modules_to_save=["lm_head"])], [1, 1])


def test_empty_expression():
    with pytest.raises(InvalidInput, match="empty expression") as err:
        compose([], [])
    assert err.value.field == "expression"


def test_weight_zero_everywhere():
    with pytest.raises(InvalidInput, match="every weight is 0"):
        compose([lora(), lora("l2")], [0.0, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "average"}, "method"),
        ({"method": "ties", "density": None}, "density"),
        ({"method": "dare_ties", "density": 1.5}, "density"),
        ({"method": "ties", "density": 0.5, "majority_sign": "mean"}, "majority_sign"),
        ({"method": "delta_svd", "rank": 0}, "rank"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        compose([lora()], [1.0], **kwargs)
    assert err.value.field == field


def test_interference_report_runs_the_same_checks():
    with pytest.raises(IncompatibleAdapters):
        interference_report([lora(), read_adapter(library()["i1"])])
