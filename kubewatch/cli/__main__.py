"""``python -m kubewatch.cli``."""

import sys

from kubewatch.cli import main

sys.exit(main())
