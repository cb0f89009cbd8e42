"""``python -m blocks --profile local|aws``."""

import sys

from blocks.aws_credentials import main

sys.exit(main())
