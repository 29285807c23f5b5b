"""Lightning task modules over a wrapped backbone: classification, image-text retrieval, CTC speech recognition
and seq2seq speech recognition (Whisper's own decoder).

Each takes a :class:`mm_adapters.backbones.Backbone` (with adapters already added to ``backbone.model``) and
carries only the task: a head, a loss and metrics. Checkpoints hold the trainable state only.
"""

from .base import AdapterTaskModule
from .classification import ClassificationModule
from .ctc import CTCModule
from .export import export_adapter
from .losses import contrastive_loss
from .recall import retrieval_recall
from .retrieval import RetrievalModule
from .seq2seq import SpeechSeq2SeqModule, normalize_transcript
from .serving import MultiTaskPredictor, TaskPrediction, load_for_inference

__all__ = [
    "AdapterTaskModule",
    "CTCModule",
    "MultiTaskPredictor",
    "ClassificationModule",
    "RetrievalModule",
    "TaskPrediction",
    "SpeechSeq2SeqModule",
    "contrastive_loss",
    "export_adapter",
    "load_for_inference",
    "normalize_transcript",
    "retrieval_recall",
]
