"""Data loading for adapter training: local image/audio/text/caption datasets, hub datasets, collate functions
that produce the batch contract, and a LightningDataModule."""

from .audio import load_audio_csv, normalize_audio, read_audio
from .bundled import (
    SST2_LABEL_NAMES,
    CaptionFiles,
    agnews_tsv,
    cifar10_dir,
    coco_mini,
    data_root,
    fsdd_csv,
    sst2_tsv,
)
from .captions import load_caption_csv, load_coco_captions
from .collators import (
    AudioClassificationCollator,
    CTCCollator,
    ImageClassificationCollator,
    RetrievalCollator,
    TextClassificationCollator,
    TranscriptCollator,
)
from .datamodule import AdapterDataModule
from .errors import LocalDataError
from .hub import DatasetUnavailableError, load_hub_or_local
from .images import ImageTransform, check_image_folder, load_image_folder, to_rgb
from .indexed import IndexedDataset
from .labels import check_label_range, encode_labels, label_names, shared_class_labels, to_class_labels
from .local import LocalData, load_local_data
from .local_fingerprint import folder_fingerprint
from .local_layout import LAYOUT as LOCAL_DATA_LAYOUT
from .padding import pad_label_sequences, pad_waveforms
from .tables import read_table
from .text import encode_texts, load_text_table
from .vocabulary import CharVocabulary

__all__ = [
    "AdapterDataModule",
    "AudioClassificationCollator",
    "CTCCollator",
    "CaptionFiles",
    "CharVocabulary",
    "DatasetUnavailableError",
    "ImageClassificationCollator",
    "ImageTransform",
    "IndexedDataset",
    "LOCAL_DATA_LAYOUT",
    "LocalData",
    "LocalDataError",
    "RetrievalCollator",
    "SST2_LABEL_NAMES",
    "TextClassificationCollator",
    "TranscriptCollator",
    "agnews_tsv",
    "check_image_folder",
    "check_label_range",
    "cifar10_dir",
    "coco_mini",
    "data_root",
    "encode_labels",
    "encode_texts",
    "folder_fingerprint",
    "fsdd_csv",
    "label_names",
    "load_audio_csv",
    "load_caption_csv",
    "load_coco_captions",
    "load_hub_or_local",
    "load_image_folder",
    "load_local_data",
    "load_text_table",
    "normalize_audio",
    "pad_label_sequences",
    "pad_waveforms",
    "read_audio",
    "read_table",
    "shared_class_labels",
    "sst2_tsv",
    "to_class_labels",
    "to_rgb",
]
