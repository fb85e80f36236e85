"""Many tenants on one deployment: tenants as data.

A tenant is a name, an enabled flag and the handful of settings that differ per vendor account
(sources, regions, the Key Vault secret names of its tokens, its destination). Everything else — the
checkpoint store, the run budget, the Key Vault itself — is the deployment's. ``settings_for`` layers
a tenant over the deployment's environment and validates the result with the same rules as a
single-tenant deployment, so a tenant can never hold a setting the product would refuse.

A deployment with no registry is single-tenant, exactly as before.
"""

from __future__ import annotations

from auditsync.tenants.model import TENANT_SETTINGS, Tenant, settings_for
from auditsync.tenants.registry import FileTenantRegistry, TableTenantRegistry, TenantRegistry

__all__ = [
    "TENANT_SETTINGS",
    "FileTenantRegistry",
    "TableTenantRegistry",
    "Tenant",
    "TenantRegistry",
    "settings_for",
]
