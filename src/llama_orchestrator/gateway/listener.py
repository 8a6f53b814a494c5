"""Where the gateway listens: its address, plain HTTP or HTTPS, and where it reaches itself.

With `gateway.tls_cert_file` and `tls_key_file` the listener speaks TLS, for clients on other
machines (keys and prompts then cross the network encrypted). The gateway's own translated
requests (gateway.loopback) then go to a second, plain listener on 127.0.0.1 with a port of the
system's choosing: the same routes and the same key checks, without a TLS handshake to itself.
A renewed certificate is read again when the daemon next reads the configs (`llama-orch up`, or
any command that starts or stops instances); new connections get it.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.errors import GatewayStartError

LISTEN_BACKLOG = 1024


@dataclass
class Listeners:
    public: asyncio.Server
    internal: asyncio.Server | None  # plain, loopback only: the gateway's requests to itself under TLS
    address: str  # what clients use: `http(s)://host:port`
    self_address: tuple[str, int]
    tls: ssl.SSLContext | None

    def close(self) -> None:
        for server in (self.public, self.internal):
            if server is not None:
                server.close()

    def reload_certificate(self, config: GatewayConfig) -> None:
        """Read the certificate and key again (a renewal) into the running listener; raise
        GatewayStartError, and keep the one in use, if they cannot be used."""
        if self.tls is not None and config.tls_cert_file and config.tls_key_file:
            tls_context(config)  # check them first: a failed load would leave the live context half-changed
            self.tls.load_cert_chain(*_files(config), password=_no_passphrase)


def tls_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """The server-side TLS context for `config`'s certificate and key, or None without them."""
    if not (config.tls_cert_file and config.tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = _files(config)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise GatewayStartError(
            f"cannot use gateway.tls_cert_file {str(cert)!r} with gateway.tls_key_file {str(key)!r}: {exc}",
            hint="give a PEM certificate (chain) and the PEM private key that belongs to it, without a passphrase",
        ) from exc
    return context


async def open_listeners(protocol: Callable[[], asyncio.Protocol], config: GatewayConfig) -> Listeners:
    """Bind `config.host:port` (with TLS when configured); raise GatewayStartError if it cannot."""
    tls = tls_context(config)
    loop = asyncio.get_running_loop()
    where = f"{config.host}:{config.port}"
    try:
        public = await loop.create_server(protocol, config.host, config.port, backlog=LISTEN_BACKLOG, ssl=tls)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise GatewayStartError(
                f"cannot listen on {where}: the port is already in use",
                hint="choose another gateway.port in orchestrator.json, or stop what holds it;"
                     " the next `llama-orch up` tries again",
            ) from exc
        raise GatewayStartError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    host, port = public.sockets[0].getsockname()[:2]
    scheme = "https" if tls else "http"
    address = f"{scheme}://[{host}]:{port}" if ":" in str(host) else f"{scheme}://{host}:{port}"
    if tls is None:
        return Listeners(public, None, address, ({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port), None)
    try:
        internal = await loop.create_server(protocol, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        public.close()
        raise GatewayStartError(f"cannot open the gateway's own loopback listener: {exc.strerror or exc}") from exc
    return Listeners(public, internal, address, internal.sockets[0].getsockname()[:2], tls)


def _files(config: GatewayConfig) -> tuple[Path, Path]:
    return Path(str(config.tls_cert_file)).expanduser(), Path(str(config.tls_key_file)).expanduser()


def _no_passphrase() -> bytes:
    # without this OpenSSL would ask for one on a terminal the daemon does not have
    raise ValueError("the private key is encrypted with a passphrase")
