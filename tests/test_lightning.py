"""Lightning task modules on tiny random backbones: what trains, what is logged, what a checkpoint holds, resuming."""

import copy

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import mm_adapters as mma
from mm_adapters.backbones import wrap_backbone
from mm_adapters.data import CharVocabulary
from mm_adapters.lightning import (
    ClassificationModule,
    CTCModule,
    RetrievalModule,
    contrastive_loss,
    export_adapter,
    load_for_inference,
    retrieval_recall,
)

from tiny_backbones import FACTORIES

NUM_CLASSES = 3
CHARS = tuple("abcdefgh ")


def rows(family: str, count: int = 8) -> list[dict]:
    """``count`` single-sample rows of the batch contract for a tiny backbone of ``family``."""
    tiny, samples = FACTORIES[family](0), []
    for seed in range(count // 2):
        batch = tiny.make_batch(seed)
        if "text" in batch:  # open_clip's tiny batch calls its token ids "text"
            batch["input_ids"] = batch.pop("text")
        samples += [{key: value[i] for key, value in batch.items()} for i in range(2)]
    for index, sample in enumerate(samples):
        sample.update(index=torch.tensor(index), labels=torch.tensor(index % NUM_CLASSES))
        sample["image_ids"] = torch.tensor(index // 2)  # two captions per image
    return samples


def loader(samples: list[dict], batch_size: int = 4) -> DataLoader:
    return DataLoader(samples, batch_size=batch_size, shuffle=False)


def adapted(family: str, seed: int = 0, placement: str = "houlsby"):
    backbone = wrap_backbone(FACTORIES[family](seed).model)
    mma.add_adapter(backbone.model, "task", mma.AdapterConfig.preset(placement, reduction_factor=4))
    return backbone


def trainer(**overrides) -> L.Trainer:
    settings = dict(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    return L.Trainer(**{**settings, **overrides})


def trainable_state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}


def frozen_state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters() if not v.requires_grad}


def ctc_rows() -> list[dict]:
    vocabulary = CharVocabulary(CHARS)
    samples = rows("hf_wav2vec2")
    for index, sample in enumerate(samples):
        sample["transcript"] = ["bad cab", "a bed", "fed", "hag"][index % 4]
    return samples, vocabulary


def ctc_collate(vocabulary):
    from mm_adapters.data import pad_label_sequences

    def collate(samples):
        return {
            "input_values": torch.stack([s["input_values"] for s in samples]),
            "attention_mask": torch.ones(len(samples), samples[0]["input_values"].numel(), dtype=torch.long),
            "labels": pad_label_sequences([vocabulary.encode(s["transcript"]) for s in samples]),
            "transcripts": [s["transcript"] for s in samples],
            "index": torch.stack([s["index"] for s in samples]),
        }

    return collate


# -- each task trains its adapters and head, never the backbone -------------------------------------------------------
@pytest.mark.parametrize("family", ["hf_vit", "timm_vit", "hf_bert", "hf_wav2vec2", "hf_clip", "open_clip"])
def test_classification_trains_adapters_and_head_only(family):
    module = ClassificationModule(adapted(family), NUM_CLASSES, lr=1e-2)
    trainable, frozen = trainable_state(module), frozen_state(module)
    data = loader(rows(family))
    fit = trainer(limit_val_batches=1)
    fit.fit(module, data, data)
    assert all(torch.equal(frozen[k], v) for k, v in frozen_state(module).items())
    changed = {k for k, v in trainable_state(module).items() if not torch.equal(trainable[k], v)}
    assert any(k.startswith("head.") for k in changed) and any(".adapters.task." in k for k in changed)
    assert {"val_acc", "val_f1", "val_loss", "train_loss"} <= set(fit.callback_metrics)
    assert module.confusion_matrix.sum() == 4  # one validation batch of four samples


@pytest.mark.parametrize("family", ["hf_clip", "open_clip"])
def test_retrieval_trains_and_reports_recall_both_ways(family):
    module = RetrievalModule(adapted(family), lr=1e-2)
    frozen = frozen_state(module)
    data = loader(rows(family))
    fit = trainer()
    fit.fit(module, data, data)
    assert all(torch.equal(frozen[k], v) for k, v in frozen_state(module).items())
    metrics = fit.callback_metrics
    for k in (1, 5, 10):
        for direction in ("i2t", "t2i"):
            assert 0.0 <= float(metrics[f"val_{direction}_recall@{k}"]) <= 1.0
    assert float(metrics["val_t2i_recall@5"]) == 1.0  # only four distinct images: every top 5 holds them all


def test_ctc_trains_and_reports_error_rates():
    samples, vocabulary = ctc_rows()
    module = CTCModule(adapted("hf_wav2vec2"), vocabulary.chars, lr=1e-2)
    data = DataLoader(samples, batch_size=4, collate_fn=ctc_collate(vocabulary))
    before = trainable_state(module)
    fit = trainer()
    fit.fit(module, data, data)
    assert torch.isfinite(fit.callback_metrics["train_loss"])
    assert float(fit.callback_metrics["val_cer"]) >= 0.0 and "val_wer" in fit.callback_metrics
    assert module.head.out_features == len(CHARS) + 1
    assert any(not torch.equal(before[k], v) for k, v in trainable_state(module).items())
    assert [reference for reference, _ in module.last_predictions] == ["bad cab", "a bed", "fed", "hag"]


def test_greedy_ctc_decoding_merges_repeats_and_drops_blanks():
    module = CTCModule(adapted("hf_wav2vec2"), CHARS)
    frames = torch.tensor([[2, 2, 0, 1, 0, 0, 2, 9, 9, 5]])  # b b _ a _ _ b " " " " e ; last frame is padding
    log_probs = torch.nn.functional.one_hot(frames, len(CHARS) + 1).float().log()
    assert module.decode(log_probs, torch.tensor([9])) == ["bab "]


def test_frozen_backbone_runs_in_eval_mode_while_adapters_train():
    module = ClassificationModule(adapted("hf_bert"), NUM_CLASSES)
    seen = {}

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            model = pl_module.backbone.model
            seen["backbone"] = model.training
            seen["adapters"] = all(m.training for n, m in model.named_modules() if ".adapters." in n)
            seen["head"] = pl_module.head.training

    trainer(max_steps=1, callbacks=[Record()], limit_val_batches=0).fit(module, loader(rows("hf_bert")))
    assert seen == {"backbone": False, "adapters": True, "head": True}


def test_optimizer_gets_only_trainable_parameters():
    module = ClassificationModule(adapted("hf_vit"), NUM_CLASSES)
    fit = trainer(max_steps=1, limit_val_batches=0)
    fit.fit(module, loader(rows("hf_vit")))
    optimized = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert optimized == {id(p) for p in module.parameters() if p.requires_grad}
    assert len(optimized) < len(list(module.parameters()))


def test_bf16_autocast_trains_fp32_adapters():
    module = ClassificationModule(adapted("hf_vit"), NUM_CLASSES)
    fit = trainer(precision="bf16-mixed", limit_val_batches=1)
    fit.fit(module, loader(rows("hf_vit")), loader(rows("hf_vit")))
    assert torch.isfinite(fit.callback_metrics["train_loss"])
    assert all(p.dtype == torch.float32 for p in module.parameters())


# -- checkpoints ------------------------------------------------------------------------------------------------------
def test_checkpoint_holds_trainable_state_only(tmp_path):
    module = ClassificationModule(adapted("hf_vit"), NUM_CLASSES)
    fit = trainer(max_steps=1, limit_val_batches=0)
    fit.fit(module, loader(rows("hf_vit")))
    fit.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    keys = set(checkpoint["state_dict"])
    assert keys == {k for k, p in module.named_parameters() if p.requires_grad}
    assert all(k.startswith("head.") or ".adapters.task." in k for k in keys)
    backbone_bytes = sum(v.numel() * v.element_size() for v in module.backbone.model.state_dict().values())
    assert (tmp_path / "last.ckpt").stat().st_size < backbone_bytes
    assert checkpoint["mm_adapters"]["active"] == ["task"] and checkpoint["optimizer_states"]


def test_resume_continues_where_it_stopped(tmp_path):
    samples = rows("hf_vit")

    def fresh():
        L.seed_everything(0)
        return ClassificationModule(adapted("hf_vit"), NUM_CLASSES, lr=1e-2)

    straight = fresh()
    trainer(max_steps=-1, max_epochs=2, limit_val_batches=0).fit(straight, loader(samples))

    class StopAfterFirstEpoch(L.Callback):  # an interrupted run: same schedule, stopped half way
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    first = fresh()
    half = trainer(max_steps=-1, max_epochs=2, limit_val_batches=0, callbacks=[StopAfterFirstEpoch()])
    half.fit(first, loader(samples))
    assert half.global_step == 2
    half.save_checkpoint(tmp_path / "epoch1.ckpt", weights_only=False)

    resumed = fresh()
    rest = trainer(max_steps=-1, max_epochs=2, limit_val_batches=0)
    rest.fit(resumed, loader(samples), ckpt_path=tmp_path / "epoch1.ckpt", weights_only=True)
    assert rest.global_step == 4 and rest.current_epoch == 2
    expected = trainable_state(straight)
    for key, value in trainable_state(resumed).items():
        torch.testing.assert_close(value, expected[key], msg=key)


def test_checkpoint_from_other_adapters_is_refused(tmp_path):
    module = ClassificationModule(adapted("hf_vit"), NUM_CLASSES)
    fit = trainer(max_steps=1, limit_val_batches=0)
    fit.fit(module, loader(rows("hf_vit")))
    fit.save_checkpoint(tmp_path / "last.ckpt")
    other = ClassificationModule(adapted("hf_vit", placement="pfeiffer"), NUM_CLASSES)
    with pytest.raises(RuntimeError, match="add the same adapters"):
        trainer(max_steps=2, limit_val_batches=0).fit(
            other, loader(rows("hf_vit")), ckpt_path=tmp_path / "last.ckpt", weights_only=True
        )
    with pytest.raises(RuntimeError, match="missing"):
        other.load_state_dict(torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"])


def test_load_from_checkpoint_rebuilds_the_trained_module(tmp_path):
    module = ClassificationModule(adapted("hf_vit"), NUM_CLASSES, lr=1e-2)
    fit = trainer(max_steps=2, limit_val_batches=0)
    fit.fit(module, loader(rows("hf_vit")))
    fit.save_checkpoint(tmp_path / "last.ckpt")
    restored = ClassificationModule.load_from_checkpoint(
        tmp_path / "last.ckpt", backbone=adapted("hf_vit", seed=0), weights_only=True
    )
    batch = next(iter(loader(rows("hf_vit"))))
    module.eval(), restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(batch), module(batch))


# -- export -----------------------------------------------------------------------------------------------------------
def test_export_and_reload_for_inference(tmp_path):
    module = ClassificationModule(adapted("hf_wav2vec2"), NUM_CLASSES, lr=1e-2)
    trainer(limit_val_batches=0).fit(module, loader(rows("hf_wav2vec2")))
    folder = export_adapter(module, tmp_path / "adapter")
    assert {p.name for p in folder.iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "head.safetensors",
        "labels.json",
        "task.json",
    }
    backbone = wrap_backbone(FACTORIES["hf_wav2vec2"](0).model)  # the same frozen weights, no adapter yet
    head = load_for_inference(backbone, folder)
    batch = next(iter(loader(rows("hf_wav2vec2"))))
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(head(backbone(batch)), module(batch))


def test_linear_probe_exports_its_head_only(tmp_path):
    backbone = wrap_backbone(FACTORIES["hf_vit"](0).model)
    backbone.model.requires_grad_(False)
    module = ClassificationModule(backbone, NUM_CLASSES, lr=1e-2)
    trainer(limit_val_batches=0).fit(module, loader(rows("hf_vit")))
    folder = export_adapter(module, tmp_path / "probe")
    assert sorted(p.name for p in folder.iterdir()) == ["head.safetensors", "labels.json", "task.json"]
    head = load_for_inference(wrap_backbone(FACTORIES["hf_vit"](0).model), folder)
    torch.testing.assert_close(head.weight, module.head.weight)


# -- retrieval maths --------------------------------------------------------------------------------------------------
def test_recall_matches_torchmetrics_hit_rate():
    from torchmetrics.retrieval import RetrievalHitRate

    generator = torch.Generator().manual_seed(0)
    image_ids = torch.arange(12).repeat_interleave(3)[torch.randperm(36, generator=generator)]
    images = torch.nn.functional.normalize(torch.randn(12, 8, generator=generator), dim=-1)[image_ids]
    texts = torch.nn.functional.normalize(images + 0.8 * torch.randn(36, 8, generator=generator), dim=-1)
    ours = retrieval_recall(images, texts, image_ids, ks=(1, 5))
    unique = torch.unique(image_ids)
    first = torch.stack([(image_ids == i).nonzero()[0, 0] for i in unique])
    similarity = texts @ images[first].T  # captions x images
    positives = image_ids[:, None] == unique[None, :]
    for k in (1, 5):
        t2i = RetrievalHitRate(top_k=k)(
            similarity.flatten(), positives.flatten(), torch.arange(36).repeat_interleave(12)
        )
        i2t = RetrievalHitRate(top_k=k)(
            similarity.T.flatten(), positives.T.flatten(), torch.arange(12).repeat_interleave(36)
        )
        assert ours[f"t2i_recall@{k}"] == pytest.approx(float(t2i))
        assert ours[f"i2t_recall@{k}"] == pytest.approx(float(i2t))
    assert 0.0 < ours["t2i_recall@1"] < 1.0


def test_contrastive_loss_is_clip_loss_for_distinct_images_and_shares_duplicates():
    generator = torch.Generator().manual_seed(0)
    images, texts = torch.randn(4, 8, generator=generator), torch.randn(4, 8, generator=generator)
    scale = torch.tensor(10.0)
    logits = scale * images @ texts.T
    clip = 0.5 * (
        torch.nn.functional.cross_entropy(logits, torch.arange(4))
        + torch.nn.functional.cross_entropy(logits.T, torch.arange(4))
    )
    torch.testing.assert_close(contrastive_loss(images, texts, torch.arange(4), scale), clip)
    same_image = images.clone()
    same_image[1] = same_image[0]  # rows 0 and 1: two captions of one image, both describing it well
    captions = same_image + 0.05 * torch.randn(4, 8, generator=generator)
    with_duplicates = contrastive_loss(same_image, captions, torch.tensor([0, 0, 1, 2]), scale)
    as_negatives = contrastive_loss(same_image, captions, torch.arange(4), scale)
    assert with_duplicates < as_negatives  # a second caption of the same image is no longer pushed away


def test_module_rejects_a_raw_model():
    with pytest.raises(TypeError, match="load_backbone or wrap_backbone"):
        ClassificationModule(copy.deepcopy(FACTORIES["hf_vit"](0).model), NUM_CLASSES)
