"""Recall@K for image-text retrieval with several captions per image."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def retrieval_recall(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    image_ids: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@K both ways for N (image, caption) rows; rows with equal ``image_ids`` show the same image.

    Images are deduplicated first. Text->image: a caption scores a hit when its image is among the K most similar
    images. Image->text: an image scores a hit when any of its captions is among the K most similar captions (the
    usual COCO/Flickr protocol; the same as torchmetrics' ``RetrievalHitRate``, computed with ``topk`` instead of
    sorting every query's full list). Returns ``{"i2t_recall@K": ..., "t2i_recall@K": ...}`` in [0, 1].
    """
    unique_ids, caption_image = torch.unique(image_ids, return_inverse=True)
    rows = torch.arange(len(image_ids), device=image_ids.device)
    first_row = torch.full_like(unique_ids, len(image_ids)).scatter_reduce(0, caption_image, rows, "amin")
    similarity = text_embeds.float() @ image_embeds[first_row].float().T  # captions x images
    positives = caption_image[:, None] == torch.arange(len(unique_ids), device=similarity.device)[None, :]
    recalls = {}
    for k in ks:
        top_images = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
        recalls[f"t2i_recall@{k}"] = positives.gather(1, top_images).any(dim=1).float().mean().item()
        top_captions = similarity.T.topk(min(k, similarity.shape[0]), dim=1).indices
        recalls[f"i2t_recall@{k}"] = positives.T.gather(1, top_captions).any(dim=1).float().mean().item()
    return recalls
