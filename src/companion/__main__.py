"""``python -m companion``: the command line without the console script (the GPU machine)."""

import sys

from .pipeline.cli import main

sys.exit(main())
