"""``python -m flows run ...``."""

import sys

from flows.cli import main

sys.exit(main())
