from .bottleneck import BottleneckAdapter
from .drop_path import DropPath
from .scale import LearnedScale

__all__ = ["BottleneckAdapter", "DropPath", "LearnedScale"]
