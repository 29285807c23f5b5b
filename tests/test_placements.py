"""Placement math per block type, checked against plain forward hooks on an unwrapped copy of the backbone.

The references only use the spec's module paths and ``torch.nn.functional``: pre-LN Pfeiffer adds ``A(z)`` to the
block output ``z``; post-LN Pfeiffer replaces the FFN LayerNorm ``LN(z)`` by ``LN(z + A(LN(z)))``; the parallel
adapter on pre-LN blocks reads the residual where it enters the FFN LayerNorm (docs/placements.md).
"""

import pytest
import torch
import torch.nn.functional as F

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.serialization import site_tensors
from mm_adapters.specs import resolve_path

from tiny_backbones import FACTORIES

POST_LN = ["hf_bert", "hf_wav2vec2"]
PRE_LN = ["hf_vit", "hf_clip", "timm_vit", "open_clip", "hf_whisper"]
ACT = {"relu": F.relu, "swish": F.silu}


def _randomize(model, name: str, seed: int = 1) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for tensor in site_tensors(model, name).values():
            tensor.copy_(torch.randn_like(tensor) * 0.3)


def _reference_adapter(tensors: dict, prefix: str, config: AdapterConfig):
    down_w, down_b = tensors[f"{prefix}.down.weight"], tensors[f"{prefix}.down.bias"]
    up_w, up_b = tensors[f"{prefix}.up.weight"], tensors[f"{prefix}.up.bias"]

    def apply(x):
        return config.scaling * F.linear(ACT[config.activation](F.linear(x, down_w, down_b)), up_w, up_b)

    return apply


def _layer_norm(module, x):
    return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output, tensor):
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


def _hooked_reference(family: str, config: AdapterConfig, tensors: dict):
    """A fresh, unwrapped copy of the backbone whose hooks compute the placement's math."""
    tiny = FACTORIES[family](0)
    spec = mma.detect_spec(tiny.model)
    for tower_name, tower in spec.towers.items():
        position_checked = False
        for index, block in enumerate(resolve_path(tiny.model, tower.layers)):
            adapter = _reference_adapter(tensors, f"{tower_name}.{index}.ffn", config)
            position = tower.norm_position_of(block)
            assert position_checked or position in ("pre", "post")
            position_checked = True
            norm = resolve_path(block, tower.ffn.norm)
            if config.reads == "residual_sum" and position == "post":
                norm.register_forward_hook(
                    lambda m, args, out, a=adapter: _layer_norm(m, args[0] + a(_layer_norm(m, args[0])))
                )
            elif config.reads == "residual_sum":
                block.register_forward_hook(
                    lambda m, args, out, a=adapter: _replace_first(out, _first(out) + a(_first(out)))
                )
            elif config.reads == "residual" and position == "pre":
                seen = {}
                norm.register_forward_pre_hook(lambda m, args, seen=seen: seen.update(r=args[0]))
                ffn = resolve_path(block, tower.ffn.output)
                ffn.register_forward_hook(
                    lambda m, args, out, a=adapter, seen=seen: _replace_first(out, _first(out) + a(seen["r"]))
                )
            else:
                raise AssertionError(f"no reference for {config.reads} on {position}-LN")
    return tiny


@pytest.mark.parametrize("family", POST_LN + PRE_LN)
def test_pfeiffer_is_the_adapterhub_seqbn_math(family):
    config = AdapterConfig.pfeiffer(reduction_factor=4)
    tiny = FACTORIES[family](0)
    mma.add_adapter(tiny.model, "task", config)
    _randomize(tiny.model, "task")
    tensors = {k: v.detach().clone() for k, v in site_tensors(tiny.model, "task").items()}
    batch = tiny.make_batch(0)
    reference = _hooked_reference(family, config, tensors)
    with torch.no_grad():
        actual = tiny.run(tiny.model, batch)
        expected = reference.run(reference.model, batch)
        base = FACTORIES[family](0)
        plain = base.run(base.model, batch)
    assert (actual - plain).abs().max() > 1e-2, "the adapter did not change the output"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", PRE_LN)
def test_parallel_on_pre_ln_reads_the_residual_stream(family):
    config = AdapterConfig.parallel(reduction_factor=4)
    tiny = FACTORIES[family](0)
    mma.add_adapter(tiny.model, "task", config)
    _randomize(tiny.model, "task")
    tensors = {k: v.detach().clone() for k, v in site_tensors(tiny.model, "task").items()}
    batch = tiny.make_batch(0)
    reference = _hooked_reference(family, config, tensors)
    with torch.no_grad():
        actual = tiny.run(tiny.model, batch)
        expected = reference.run(reference.model, batch)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def _outputs(family: str, configs: dict) -> dict:
    results = {}
    for key, config in configs.items():
        tiny = FACTORIES[family](0)
        mma.add_adapter(tiny.model, "task", config)
        _randomize(tiny.model, "task")
        with torch.no_grad():
            results[key] = tiny.run(tiny.model, tiny.make_batch(0))
    return results


@pytest.mark.parametrize("family", ["hf_bert", "hf_vit"])
def test_reads_variants_differ_exactly_where_the_block_type_says(family):
    out = _outputs(
        family,
        {
            "residual": AdapterConfig.parallel(reduction_factor=4),
            "sublayer_input": AdapterConfig.parallel(reduction_factor=4, reads="sublayer_input"),
            "pfeiffer": AdapterConfig.pfeiffer(reduction_factor=4),
            "houlsby_ffn": AdapterConfig.houlsby_ffn(reduction_factor=4),
        },
    )
    # post-LN: the FFN input is the residual stream; pre-LN: the LayerNorm sits between them
    same_parallel = torch.equal(out["residual"], out["sublayer_input"])
    assert same_parallel == (family == "hf_bert")
    assert (out["pfeiffer"] - out["houlsby_ffn"]).abs().max() > 1e-2


def test_bert_init_starts_away_from_the_base_model_and_zero_init_does_not():
    tiny = FACTORIES["hf_vit"](0)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        plain = tiny.run(tiny.model, batch)
    mma.add_adapter(tiny.model, "zero", AdapterConfig.pfeiffer())
    mma.add_adapter(tiny.model, "bert", AdapterConfig.pfeiffer(init="bert"))
    up = site_tensors(tiny.model, "bert")["vision.0.ffn.up.weight"]
    assert 0.01 < up.std().item() < 0.03 and not torch.all(
        site_tensors(tiny.model, "bert")["vision.0.ffn.up.bias"]
    )
    with torch.no_grad():
        mma.set_active_adapters(tiny.model, "zero")
        torch.testing.assert_close(tiny.run(tiny.model, batch), plain, rtol=0, atol=1e-6)
        mma.set_active_adapters(tiny.model, "bert")
        assert (tiny.run(tiny.model, batch) - plain).abs().max() > 1e-4


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"reads": "residual"}, "reads"),
        ({"mode": "parallel", "reads": "residual_sum"}, "reads"),
        ({"init": "houlsby"}, "init"),
    ],
)
def test_invalid_placement_fields_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdapterConfig(**kwargs)


def test_placement_is_saved_and_loaded(tmp_path):
    tiny = FACTORIES["hf_vit"](0)
    config = AdapterConfig.parallel(reads="sublayer_input", init="bert")
    mma.add_adapter(tiny.model, "task", config)
    folder = mma.save_adapter(tiny.model, "task", tmp_path / "a")
    document = (folder / "adapter_config.json").read_text()
    assert '"mm_adapters.adapter/3"' in document and '"sublayer_input"' in document
    other = FACTORIES["hf_vit"](0)
    mma.load_adapter(other.model, folder)
    assert mma.list_adapters(other.model)["task"] == config
    batch = tiny.make_batch(0)
    with torch.no_grad():
        torch.testing.assert_close(other.run(other.model, batch), tiny.run(tiny.model, batch), rtol=0, atol=0)
