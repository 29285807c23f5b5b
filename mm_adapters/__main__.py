"""``python -m mm_adapters COMMAND ...``: the ``mm-adapters`` console script."""

import sys

from mm_adapters.cli import main

sys.exit(main())
