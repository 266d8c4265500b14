"""``python -m kubewatch``."""

import sys

from kubewatch.cli import main

sys.exit(main())
