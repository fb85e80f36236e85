"""One tenant's view of the shared checkpoint store.

Every tenant's checkpoints live in the deployment's store under ``tenants/<tenant>/<stream>``, so the
runner, the lease and compare-and-swap work unchanged: the runner sees plain stream names, the store
sees keys no other tenant (and no single-tenant stream) can collide with.
"""

from __future__ import annotations

from dataclasses import replace

from auditsync.model import Checkpoint, CheckpointStore


def tenant_key(tenant: str, stream: str) -> str:
    return f"tenants/{tenant}/{stream}"


class TenantScopedStore:
    """A CheckpointStore that maps ``stream`` to ``tenants/<tenant>/<stream>`` on the way in and back."""

    def __init__(self, store: CheckpointStore, tenant: str) -> None:
        self.inner = store
        self.tenant = tenant
        self._prefix = tenant_key(tenant, "")

    def __repr__(self) -> str:
        return f"TenantScopedStore({self.inner!r}, {self.tenant!r})"

    def load(self, stream: str) -> Checkpoint:
        return replace(self.inner.load(self._prefix + stream), stream=stream)

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        saved = self.inner.save(replace(checkpoint, stream=self._prefix + checkpoint.stream))
        return replace(saved, stream=checkpoint.stream)

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        saved = self.inner.save_all([replace(c, stream=self._prefix + c.stream) for c in checkpoints])
        return [replace(s, stream=c.stream) for s, c in zip(saved, checkpoints, strict=True)]

    def delete(self, checkpoint: Checkpoint) -> None:
        self.inner.delete(replace(checkpoint, stream=self._prefix + checkpoint.stream))

    def list(self, prefix: str = "") -> list[Checkpoint]:
        """The tenant's checkpoints only, read by prefix (not the whole table filtered here)."""
        return [
            replace(c, stream=c.stream.removeprefix(self._prefix))
            for c in self.inner.list(self._prefix + prefix)
        ]
