"""``python -m localdms serve``."""

import sys

from localdms.cli import main

sys.exit(main())
