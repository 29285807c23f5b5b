import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

# Tiny models: one thread is faster than two fighting over a small op, and leaves a core for subprocess tests.
torch.set_num_threads(1)


import copy  # noqa: E402
import logging  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def sweep_timm():
    """``sweep_timm(name)``: (a copy of the timm model the coverage sweep builds, shrunk, and its run function); each
    model is built once per test module."""
    from mm_adapters.coverage import named_candidate

    cache = {}

    def get(name: str):
        if name not in cache:
            candidate = named_candidate("timm", name)
            cache[name] = (candidate.build(), candidate.run)
        model, run = cache[name]
        return copy.deepcopy(model), run

    return get


@pytest.fixture
def quiet_auto_spec():
    """Keep the automatic spec's one-line log (every detect_spec writes it) out of the test output."""
    logger = logging.getLogger("mm_adapters")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
