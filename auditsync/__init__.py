"""auditsync: Keeper and 1Password audit events into Microsoft Sentinel / Azure Log Analytics."""

from __future__ import annotations

__version__ = "0.1.0"
