"""Lightning task modules over a wrapped backbone: classification, image-text retrieval and CTC speech recognition.

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
from .serving import MultiTaskPredictor, TaskPrediction, load_for_inference

__all__ = [
    "AdapterTaskModule",
    "CTCModule",
    "MultiTaskPredictor",
    "ClassificationModule",
    "RetrievalModule",
    "TaskPrediction",
    "contrastive_loss",
    "export_adapter",
    "load_for_inference",
    "retrieval_recall",
]
