"""``python -m wxmiddleware.testing``: see :func:`wxmiddleware.testing.cli.main`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
