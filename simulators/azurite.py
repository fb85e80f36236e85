"""Azurite's table or queue service in memory, for the demo and the benchmarks (tests have fixtures).

Azurite is the real emulator (npm, installed by ``./dev setup`` into node_modules), not a simulator of
ours; this only starts and stops it. ``--skipApiVersionCheck``: azure-storage-queue speaks a newer
service version than this Azurite knows, and the operations we use are unchanged across them.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BIN = Path(__file__).resolve().parent.parent / "node_modules" / ".bin"
ACCOUNT = "devstoreaccount1"
#: Azurite's well-known development key (public, documented by Microsoft).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def available(service: str) -> bool:
    return (BIN / f"azurite-{service}").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def azurite(service: str) -> Iterator[tuple[str, int]]:
    """``azurite-table`` or ``azurite-queue`` in memory; yields (connection string, pid)."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        process = subprocess.Popen(
            [
                str(BIN / f"azurite-{service}"),
                "--inMemoryPersistence",
                f"--{service}Host",
                "127.0.0.1",
                f"--{service}Port",
                str(port),
                "--disableTelemetry",
                "--skipApiVersionCheck",
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(400):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                    break
                time.sleep(0.05)
            endpoint = "TableEndpoint" if service == "table" else "QueueEndpoint"
            yield (
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"{endpoint}=http://127.0.0.1:{port}/{ACCOUNT};",
                process.pid,
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
