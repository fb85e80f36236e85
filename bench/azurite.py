"""Azurite's table service for a benchmark run: in memory, on a free loopback port, stopped afterwards.

The tests have their own session fixture (tests/fixtures/azurite.py); the benchmarks must not depend on
the test stack, so this is the same few lines without pytest.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.measure import ROOT

AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
ACCOUNT = "devstoreaccount1"
#: The emulator's well-known public key (reference/local-azure.md), not a secret.
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def azurite_tables(timeout: float = 30.0) -> Iterator[str]:
    """Run azurite-table until the block ends; yields its connection string."""
    if not AZURITE_TABLE.exists():
        raise RuntimeError(f"{AZURITE_TABLE} is missing: run ./dev setup (it installs Azurite)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-azurite-") as workdir:
        log = (Path(workdir) / "azurite.log").open("wb")
        process = subprocess.Popen(
            [
                str(AZURITE_TABLE),
                "--inMemoryPersistence",
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(port),
                "--disableTelemetry",
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"azurite-table did not start on port {port}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield (
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={EMULATOR_KEY};"
                f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
