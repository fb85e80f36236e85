"""``python -m auditsync``: see auditsync.cli.

Run outside the environment ``./dev`` sets up, the command would die on its first third-party import
with a traceback; it says instead, in one line, how to set up.
"""

from __future__ import annotations

import sys

try:
    from auditsync.cli import main
except ModuleNotFoundError as missing:
    if (missing.name or "").split(".")[0] == "auditsync":
        raise
    print(
        f"auditsync: the Python package '{missing.name}' is not installed in this interpreter "
        f"({sys.executable}); run ./dev setup once, then ./dev cli {' '.join(sys.argv[1:]) or '--help'} "
        "(or .venv/bin/python -m auditsync ...).",
        file=sys.stderr,
    )
    sys.exit(2)

sys.exit(main())
