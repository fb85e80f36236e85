"""A throwaway certificate authority and a loopback server certificate, made with trustme.

The Key Vault SDK refuses plain http, so its simulator serves TLS; clients trust the CA through
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` pointing at the ``ca.pem`` written here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LoopbackTLS:
    """Where the CA certificate lives and how to serve and trust certificates it signed."""

    ca_pem: Path
    server_context: ssl.SSLContext
    _ca: trustme.CA

    def client_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` that trusts only the throwaway CA (for clients not using env vars)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def env(self) -> dict[str, str]:
        """Variables that make requests, azure-core and the ssl module trust the throwaway CA."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_pem), "SSL_CERT_FILE": str(self.ca_pem)}


def make_loopback_tls(directory: Path) -> LoopbackTLS:
    """Create a CA and a server certificate for 127.0.0.1/localhost; write ``directory/ca.pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="auditsync test CA")
    server_cert = ca.issue_cert(*LOOPBACK_NAMES)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    return LoopbackTLS(ca_pem=ca_pem, server_context=context, _ca=ca)
