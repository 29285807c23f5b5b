from .bottleneck import BottleneckAdapter

__all__ = ["BottleneckAdapter"]
