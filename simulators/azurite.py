"""Azurite's table or queue service in memory, for the demo, the benchmarks and the test fixtures.

Azurite is the real emulator (npm, installed by ``./dev setup`` into node_modules), not a simulator of
ours; this only starts and stops it, in one place. ``--skipApiVersionCheck``: azure-storage-queue speaks
a newer service version than this Azurite knows, and the operations we use are unchanged across them.
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
START_TIMEOUT = 30.0


def available(service: str) -> bool:
    return (BIN / f"azurite-{service}").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connection_string(service: str, port: int, key: str = KEY) -> str:
    """The shared-key connection string of ``azurite-<service>`` on ``port``."""
    endpoint = "TableEndpoint" if service == "table" else "QueueEndpoint"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
        f"{endpoint}=http://127.0.0.1:{port}/{ACCOUNT};"
    )


@contextlib.contextmanager
def run_azurite(service: str, *extra: str, port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``azurite-<service>`` in memory on ``port`` (a free one by default) until the block ends.

    Raises RuntimeError, with Azurite's own output, when it is not installed, exits or does not listen.
    """
    binary = BIN / f"azurite-{service}"
    if not binary.exists():
        raise RuntimeError(
            f"{binary} is missing: run ./dev setup (it installs the npm dev tools, Azurite too)."
        )
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        log_path = Path(workdir) / "azurite.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--inMemoryPersistence",
                    f"--{service}Host",
                    "127.0.0.1",
                    f"--{service}Port",
                    str(port),
                    "--disableTelemetry",
                    "--skipApiVersionCheck",
                    *extra,
                ],
                cwd=workdir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_for_port(port, process, log_path, binary.name)
                yield process
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{output}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {START_TIMEOUT}s")


@contextlib.contextmanager
def azurite(service: str) -> Iterator[tuple[str, int]]:
    """``azurite-table`` or ``azurite-queue`` in memory; yields (connection string, pid)."""
    port = free_port()
    with run_azurite(service, port=port) as process:
        yield connection_string(service, port), process.pid
