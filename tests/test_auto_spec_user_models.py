"""Models from outside the three libraries, adapted with no ``spec=`` and no ``example_inputs=``: torch's own
``nn.TransformerEncoder``, and a GPT and a ViT written the way users write them."""

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mm_adapters as mma
from mm_adapters.state import iter_sites

logging.getLogger("mm_adapters").setLevel(logging.ERROR)


class TorchEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.c_attn, self.c_proj, self.heads = nn.Linear(width, 3 * width), nn.Linear(width, width), heads

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (
            z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in self.c_attn(x).split(c, 2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class GPTBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(width), CausalSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT style: token and position embeddings, a ModuleList of blocks, a tied head."""

    def __init__(self, vocab: int = 64, width: int = 32, depth: int = 3, block_size: int = 16) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(block_size, width)
        self.h = nn.ModuleList(GPTBlock(width, 4) for _ in range(depth))
        self.ln_f, self.lm_head = nn.LayerNorm(width), nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.qkv, self.proj, self.heads = nn.Linear(width, 3 * width), nn.Linear(width, width), heads

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) / math.sqrt(c // self.heads)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A fixed image size (its position embedding), a class token, a Sequential of blocks."""

    def __init__(self, img_size: int = 32, patch: int = 8, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = nn.Conv2d(3, width, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, (img_size // patch) ** 2 + 1, width) * 0.02)
        self.blocks = nn.Sequential(*(ViTBlock(width, 4) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 10)

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


MODELS = {
    "torch_transformer_encoder": (TorchEncoder, lambda: torch.randn(2, 6, 32), lambda m: m.encoder.layers),
    "hand_written_gpt": (GPT, lambda: torch.randint(0, 64, (2, 10)), lambda m: m.h),
    "hand_written_vit": (ViT, lambda: torch.randn(2, 3, 32, 32), lambda m: m.blocks),
}


@pytest.mark.parametrize("preset", ["houlsby", "pfeiffer", "parallel"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_model_from_outside_the_libraries_is_adapted_with_no_spec(name, preset):
    build, make_input, blocks = MODELS[name]
    torch.manual_seed(0)
    model, x = build().eval(), make_input()
    with torch.no_grad():
        base = model(x)
    mma.add_adapter(model, "task", getattr(mma.AdapterConfig, preset)(reduction_factor=4))
    sites = [site for site in iter_sites(model)]
    expected_sites = len(getattr(mma.AdapterConfig, preset)().sites)
    assert len(sites) == len(blocks(model)) * expected_sites
    with torch.no_grad():
        torch.testing.assert_close(model(x), base, atol=1e-5, rtol=1e-5)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
    for mode in ("train", "eval", "no_grad"):  # nn.TransformerEncoderLayer's fused path must not skip them
        model.train(mode == "train")
        with torch.set_grad_enabled(mode != "no_grad"):
            assert (model(x) - base).abs().max() > 1e-3, mode
    model.train()
    model(x).float().pow(2).sum().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and p.grad.any() for p in trainable)


def test_torch_encoder_decoder_takes_example_inputs_and_adapts_its_cross_attention():
    torch.manual_seed(0)
    model = nn.Transformer(32, 4, 2, 2, 64, dropout=0.0, batch_first=True).eval()
    src, tgt = torch.randn(2, 6, 32), torch.randn(2, 4, 32)
    with torch.no_grad():
        base = model(src, tgt)
    with pytest.raises(ValueError, match="example_inputs="):
        mma.add_adapter(
            nn.Transformer(32, 4, 1, 1, 64, batch_first=True), "task"
        )  # forward(src, tgt): two inputs
    config = mma.AdapterConfig.houlsby(sites=("attn", "cross_attn", "ffn"), reduction_factor=4)
    mma.add_adapter(model, "task", config, example_inputs=(src, tgt))
    sites = {(site.tower, site.site) for site in iter_sites(model)}
    assert ("decoder_layers", "cross_attn") in sites and ("encoder_layers", "ffn") in sites
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt), base, atol=1e-5, rtol=1e-5)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
        assert (model(src, tgt) - base).abs().max() > 1e-3
    with torch.inference_mode():
        assert (model(src, tgt) - base).abs().max() > 1e-3


def test_a_model_whose_head_starts_at_zero_is_adapted_with_no_spec():
    """torchvision's VisionTransformer zeroes its head before training, so its output is 0 for any input and no
    adapter can change it: the probes are then checked on the last block's output instead of being refused."""
    torch.manual_seed(0)
    model = ViT().eval()
    nn.init.zeros_(model.head.weight), nn.init.zeros_(model.head.bias)
    mma.add_adapter(model, "task", mma.AdapterConfig.pfeiffer(reduction_factor=4))
    assert mma.adapted_layers(model) == {"blocks": [0, 1, 2]}
    features = {}
    model.norm.register_forward_hook(lambda _m, _a, out: features.update(out=out))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model(x)
        base = features["out"]
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
        model(x)
    assert (features["out"] - base).abs().max() > 1e-3
