"""The sweep's own checks, independent of the spec: the block finder (innermost repeated module with an attention-like
and an FFN-like sublayer), half-adapted detection (a found block without adapters and no note naming it), and the
mode check that catches adapters a fused fast path skips, with no hook on the model."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mm_adapters import AdapterConfig, add_adapter
from mm_adapters.coverage.blocks import find_blocks, missed_blocks, named_in_notes
from mm_adapters.coverage.check import REFUSED, Result, check_adapters_run, check_model, outputs_in_modes
from mm_adapters.state import iter_sites


class SelfAttention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(F.scaled_dot_product_attention(q, k, v))


class Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), SelfAttention(width)
        self.norm2, self.mlp = nn.LayerNorm(width), Mlp(width)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HandWrittenViT(nn.Module):
    """A user's own ViT; ``pretrained_cfg`` tells the automatic spec its input (as a timm model's does)."""

    pretrained_cfg = {"input_size": (3, 32, 32)}

    def __init__(self, width: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, width, 8, stride=8)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, pixel_values):
        x = self.embed(pixel_values).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    forward_features = forward


def _run(model):
    return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


def test_the_finder_sees_each_block_and_nothing_in_a_cnn():
    assert find_blocks(HandWrittenViT(depth=3)) == ["blocks.0", "blocks.1", "blocks.2"]
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    assert find_blocks(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)) == [
        "layers.0",
        "layers.1",
    ]
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3))
    assert find_blocks(cnn) == []


def test_a_block_list_that_also_holds_cross_attention_blocks_is_found_whole():
    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Block(16) for _ in range(2))
            self.cross = nn.ModuleList(Block(16) for _ in range(2))

    assert find_blocks(Decoder()) == ["cross.0", "cross.1", "layers.0", "layers.1"]


def test_a_block_without_adapters_is_missed_unless_a_note_names_it():
    model = HandWrittenViT(depth=2).eval().requires_grad_(False)
    blocks = find_blocks(model)
    add_adapter(model, "a", AdapterConfig.houlsby())
    assert missed_blocks(model, blocks, ("attn", "ffn"), ()) == []
    model.blocks[1] = Block(32)  # as if the spec had stopped after the first block
    assert missed_blocks(model, blocks, ("attn", "ffn"), ()) == ["blocks.1"]
    assert missed_blocks(model, blocks, ("attn", "ffn"), ("layer 'blocks.1' is shared, not adapted",)) == []
    assert missed_blocks(model, blocks + ["blocks.0"], ("attn", "ffn", "extra"), ()) == [
        "blocks.0 (only attn, ffn)",
        "blocks.1",
        "blocks.0 (only attn, ffn)",
    ]


def test_only_paths_and_quoted_names_in_a_note_count():
    assert named_in_notes("visual.trunk.stages.0", ("visual.trunk is a ConvNeXt",))
    assert named_in_notes("encoder.layer.3", ("tower 'encoder' left out",))
    assert not named_in_notes("encoder.layer.3", ("the encoder is adapted",))


def test_a_model_with_blocks_passes_the_full_check():
    result = check_model(HandWrittenViT().eval().requires_grad_(False), _run, Result("own", "vit"))
    assert result.ok, result.error
    assert result.blocks == 2 and list(result.towers.values()) == [2]


def test_a_model_without_blocks_that_the_spec_refuses_is_counted_as_refused():
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3)).eval().requires_grad_(False)
    result = check_model(cnn, _run, Result("own", "cnn"))
    assert result.refused and result.error.startswith(f"{REFUSED}: ") and result.blocks == 0
    assert len(result.error) > len(REFUSED) + 20  # the spec's reason comes with it


def _base(module: nn.Module) -> nn.Module:
    return getattr(module, "base_layer", module)


class ParallelLists(nn.Module):
    """XLM's layout: attention and FFN layers in two lists of the model itself, no block module."""

    pretrained_cfg = {"input_size": (3, 32, 32)}

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, width, 8, stride=8)
        self.attentions = nn.ModuleList(SelfAttention(width) for _ in range(2))
        self.ffns = nn.ModuleList(Mlp(width) for _ in range(2))

    def forward_features(self, pixel_values):
        x = self.embed(pixel_values).flatten(2).transpose(1, 2)
        for attention, ffn in zip(self.attentions, self.ffns, strict=True):
            x = x + attention(x)
            x = x + ffn(x)
        return x

    forward = forward_features


def test_a_model_with_attention_but_no_block_module_is_never_counted_as_refused():
    model = ParallelLists().eval().requires_grad_(False)
    assert find_blocks(model) == []
    result = check_model(model, _run, Result("own", "xlm-like"))
    assert not result.refused, result.error


class FastPathBlock(Block):
    """Like torch's fused ``nn.TransformerEncoderLayer``: in inference it reads its sublayers' weights directly, so
    the adapter wrappers around them never run; a forward hook on it switches the fast path off."""

    def forward(self, x):
        if torch.is_grad_enabled() or self.training or self._forward_hooks or self._forward_pre_hooks:
            return super().forward(x)
        attn, mlp = _base(self.attn), _base(self.mlp)
        q, k, v = F.linear(self.norm1(x), attn.qkv.weight, attn.qkv.bias).chunk(3, dim=-1)
        x = x + F.linear(F.scaled_dot_product_attention(q, k, v), attn.proj.weight, attn.proj.bias)
        hidden = F.gelu(F.linear(self.norm2(x), mlp.fc1.weight, mlp.fc1.bias))
        return x + F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias)


def _adapted_with_nonzero_adapters() -> tuple[nn.Module, dict]:
    model = HandWrittenViT().eval().requires_grad_(False)
    base = outputs_in_modes(copy.deepcopy(model), _run)
    add_adapter(model, "a", AdapterConfig.houlsby())
    with torch.no_grad():
        for site in iter_sites(model):
            site.adapters["a"].up.weight.normal_(std=0.1)
    return model, base


def test_adapters_a_fast_path_skips_are_caught_in_the_modes_it_takes():
    model, base = _adapted_with_nonzero_adapters()
    check_adapters_run(model, _run, base, "houlsby")  # every mode differs from the base
    for block in model.blocks:
        block.__class__ = (
            FastPathBlock  # the fused path reads the wrapped sublayers' weights: adapters skipped
        )
    hooks_before = {id(m): (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()}
    with pytest.raises(AssertionError, match="houlsby: adapters skipped in no_grad"):
        check_adapters_run(model, _run, base, "houlsby")
    # the check added no hook (active sites hold their own no-op pre-hook that keeps fused parents off their fast path)
    assert hooks_before == {
        id(m): (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()
    }
    assert not any(m._forward_hooks for m in model.modules())


def test_outputs_in_modes_runs_each_mode_and_leaves_the_model_in_eval():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    outputs = outputs_in_modes(model, lambda m: m(torch.ones(2, 4)))
    assert list(outputs) == ["eval", "no_grad", "inference_mode", "train"]
    assert torch.equal(outputs["eval"], outputs["no_grad"]) and not torch.equal(
        outputs["eval"], outputs["train"]
    )
    assert not model.training
