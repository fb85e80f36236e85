"""``python -m auditsync``: see auditsync.cli."""

from __future__ import annotations

import sys

from auditsync.cli import main

sys.exit(main())
