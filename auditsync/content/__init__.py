"""The Sentinel solution in a workspace: which rule templates it installed, which rules run from them,
and turning rules on (``python -m auditsync sentinel enable|status``).

The templates install rules as templates only, so a redeployment never changes what the SOC tuned;
this package creates the active rules, once, on request. The Function App never runs it.
"""

from __future__ import annotations
