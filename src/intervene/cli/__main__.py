"""``python -m intervene.cli``: the ``intervene`` command."""

import sys

from intervene.cli import main

sys.exit(main())
