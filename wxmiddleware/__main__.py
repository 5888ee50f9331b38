"""``python -m wxmiddleware``: the same as the ``wxmiddleware`` command."""

import sys

from .cli import main

sys.exit(main())
