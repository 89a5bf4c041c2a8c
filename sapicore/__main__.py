"""``python -m sapicore``: the sapicore command."""

import sys

from .cli import main

sys.exit(main())
