"""The automatic spec builds its example input from the model's own forward signature and config (log-mel features,
decoder inputs, both modalities of a dual encoder), takes ``example_inputs=`` where it cannot, and traces and adapts
every tower, following every output of a forward that returns several."""

import logging

import pytest
import torch
import transformers
from torch import nn

import mm_adapters as mma
from mm_adapters.specs import auto_spec
from mm_adapters.specs.auto import NoExampleInput, example_run
from mm_adapters.state import iter_sites

logging.getLogger("mm_adapters").setLevel(logging.ERROR)

TINY = dict(vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)


def _whisper():
    config = transformers.WhisperConfig(
        d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=16, max_source_positions=16, max_target_positions=32,
        **TINY,
    )  # fmt: skip
    return transformers.WhisperModel(config)


def _speech_to_text():
    config = transformers.Speech2TextConfig(
        d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, input_feat_per_channel=8, num_conv_layers=1,
        conv_channels=16, conv_kernel_sizes=[5], max_source_positions=64, max_target_positions=32, **TINY,
    )  # fmt: skip
    return transformers.Speech2TextModel(config)


def _bart():
    config = transformers.BartConfig(
        d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32, **TINY,
    )  # fmt: skip
    return transformers.BartModel(config)


def _siglip():
    config = transformers.SiglipConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=100, max_position_embeddings=16),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=16, patch_size=8),
    )  # fmt: skip
    return transformers.SiglipModel(config)


# model, the input names the example must hold, the towers the spec must find
MODELS = {
    "whisper": (_whisper, {"input_features", "decoder_input_ids"}, {"encoder_layers", "decoder_layers"}),
    "speech_to_text": (_speech_to_text, {"input_features", "decoder_input_ids"}, {"encoder_layers", "decoder_layers"}),
    "bart": (_bart, {"input_ids", "decoder_input_ids"}, {"encoder_layers", "decoder_layers"}),
    "siglip": (_siglip, {"input_ids", "pixel_values"}, {"text_model_encoder_layers", "vision_model_encoder_layers"}),
}  # fmt: skip


class _Recording(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.seen = model, set()

    def __call__(self, **kwargs):
        self.seen |= set(kwargs)
        return self.model(**kwargs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_input_and_every_tower_of_a_multi_input_model(name):
    build, inputs, towers = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    recording = _Recording(model)
    example_run(model)(recording)
    assert inputs <= recording.seen
    spec = auto_spec(model)
    assert set(spec.towers) == towers
    mma.add_adapter(model, "task", mma.AdapterConfig.houlsby(), spec=spec)
    adapted = {site.tower for site in iter_sites(model)}
    assert adapted == towers
    # every tower's adapters get a gradient: the loss reads every output, not the first one only
    outputs = example_run(model)(model.train())
    loss = sum(
        t.float().pow(2).sum() for t in outputs.values() if torch.is_tensor(t) and t.is_floating_point()
    )
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
    outputs = example_run(model)(model)
    loss = sum(
        t.float().pow(2).sum() for t in outputs.values() if torch.is_tensor(t) and t.is_floating_point()
    )
    loss.backward()
    dead = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert not dead


class _Tower(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(width) for _ in range(2))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.qkv, self.proj = (
            nn.LayerNorm(width),
            nn.Linear(width, 3 * width),
            nn.Linear(width, width),
        )
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def attention(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(nn.functional.scaled_dot_product_attention(q, k, v))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DualEncoder(nn.Module):
    """A user's image-text model: two inputs, both towers' outputs returned."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 8, 8)
        self.tokens = nn.Embedding(50, 16)
        self.image_tower, self.text_tower = _Tower(16), _Tower(16)

    def forward(self, images, ids):
        image = self.image_tower(self.patch(images).flatten(2).transpose(1, 2))
        return image.mean(1), self.text_tower(self.tokens(ids)).mean(1)


def test_a_model_whose_inputs_cannot_be_told_points_to_example_inputs():
    with pytest.raises(NoExampleInput, match="example_inputs="):
        example_run(DualEncoder())
    with pytest.raises(ValueError, match="pass one as example_inputs= to add_adapter"):
        mma.add_adapter(DualEncoder(), "task")


def test_example_inputs_on_add_adapter_and_describe_adapt_both_towers_of_a_two_output_forward():
    torch.manual_seed(0)
    model = DualEncoder().eval()
    example = (torch.randn(2, 3, 16, 16), torch.randint(0, 50, (2, 5)))
    text = mma.describe(model, example_inputs=example, show=False)
    assert "image_tower" in text and "text_tower" in text
    before = model(*example)
    mma.add_adapter(model, "task", mma.AdapterConfig.houlsby(), example_inputs=example)
    assert {site.tower for site in iter_sites(model)} == {"image_tower_blocks", "text_tower_blocks"}
    for got, expected in zip(model(*example), before, strict=True):
        torch.testing.assert_close(got, expected)
    example_dict = {"images": example[0], "ids": example[1]}
    assert set(auto_spec(DualEncoder(), example_inputs=example_dict).towers) == {
        "image_tower_blocks", "text_tower_blocks",
    }  # fmt: skip


def test_a_tower_the_example_does_not_reach_is_left_out_without_a_key_error():
    class Optional(DualEncoder):
        def forward(self, images, ids=None):
            image = self.image_tower(self.patch(images).flatten(2).transpose(1, 2)).mean(1)
            return image if ids is None else (image, self.text_tower(self.tokens(ids)).mean(1))

    model = Optional().eval()
    spec = auto_spec(model, example_inputs=torch.randn(2, 3, 16, 16))
    assert set(spec.towers) == {"blocks"} and spec.towers["blocks"].layers == "image_tower.blocks"
    # never silently half-adapted: the tower left out is named, with the reason, in the spec and in describe
    (note,) = spec.notes
    assert "text_tower.blocks (2 x _Block) is not adapted: it never ran" in note and "example_inputs=" in note
    assert note in mma.describe(model, spec, show=False)


class _NoResidualBlock(_Block):
    def forward(self, x):
        return self.mlp(self.attention(self.norm1(x)))


def test_blocks_that_run_attention_but_have_no_sublayer_pair_are_named_in_a_note(caplog):
    model = DualEncoder().eval()
    model.text_tower.blocks = nn.ModuleList(_NoResidualBlock(16) for _ in range(2))
    example = (torch.randn(2, 3, 16, 16), torch.randint(0, 50, (2, 5)))
    with caplog.at_level(logging.WARNING, logger="mm_adapters"):
        spec = auto_spec(model, example_inputs=example)
    assert [t.layers for t in spec.towers.values()] == ["image_tower.blocks"]
    (note,) = spec.notes
    assert "text_tower.blocks (2 x _NoResidualBlock) is not adapted: it runs attention" in note
    assert note in caplog.text


def test_bad_example_inputs_are_refused_before_tracing():
    with pytest.raises(TypeError, match="example_inputs must be a tensor"):
        auto_spec(DualEncoder(), example_inputs="images")
