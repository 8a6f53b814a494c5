"""The gateway over HTTPS (gateway.tls_cert_file / tls_key_file), with certificates from a test CA
(trustme) and fake llama-server processes behind it."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import httpx
import openai
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from tests.integration.test_gateway_faults import CHAT, fake_server, serving
from tests.support.ports import free_port
from tests.support.waiting import async_wait_until
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.errors import GatewayStartError
from llama_orchestrator.gateway.server import Gateway

pytestmark = pytest.mark.integration


def issue(ca: trustme.CA, directory: Path) -> GatewayConfig:
    """A certificate for 127.0.0.1 from `ca`, written where the config says."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        with (directory / "cert.pem").open("ab") as chain:
            chain.write(extra.bytes())
    return GatewayConfig(tls_cert_file=str(directory / "cert.pem"), tls_key_file=str(directory / "key.pem"))


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_serves_both_lanes_and_translated_routes_and_a_cancel_still_frees_the_slot(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    ca = trustme.CA()
    config = issue(ca, tmp_path / "tls")
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.02"}, "-np", "1") as (port, _):
        async with serving(config, StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            assert gw.address.startswith("https://127.0.0.1:")

            def sdk() -> openai.AsyncOpenAI:  # each on its own connection: the first request decides its lane
                return openai.AsyncOpenAI(base_url=gw.address + "/v1", api_key="x", max_retries=0,
                                          http_client=httpx.AsyncClient(verify=trusting(ca)))

            assert sorted(m.id for m in (await sdk().models.list()).data) == ["one", "tiny"]  # name and alias
            sdk = sdk()
            chunks = [c async for c in await sdk.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True)]
            assert chunks[-1].choices[0].finish_reason is not None and len(chunks) >= 5
            whole = await sdk.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                                      max_tokens=3)
            assert whole.usage is not None and whole.usage.completion_tokens == 3
            assert gw.lanes == {"fast": 2, "handed_off": 1}  # inference on the fast lane, inside TLS too

            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(ca))) as http:
                # Ollama's API is translated through the gateway's own routes (its loopback listener)
                async with http.post(gw.address + "/api/chat", json={
                        "model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": False}) as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["done"] is True
                # a client that leaves mid-stream: the upstream request is closed, the slot freed
                log = tmp_path / f"fake-tiny-{port}.log"
                resp = await http.post(gw.address + "/v1/chat/completions",
                                       json={**CHAT, "model": "tiny", "stream": True, "max_tokens": 100000})
                await resp.content.readuntil(b"\n\n")
                resp.close()
                await async_wait_until(lambda: log.read_text().count("cancel task") == 1, 10,
                                       message="the fake saw its task cancelled")

            # plain HTTP on the HTTPS port gets no answer
            reader, writer = await asyncio.open_connection("127.0.0.1", int(gw.address.rsplit(":", 1)[1]))
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not (await reader.read(64)).startswith(b"HTTP/1.1 200")
            writer.close()


async def test_unusable_certificate_files_stop_the_start_naming_them(tmp_path: Path) -> None:
    ca = trustme.CA()
    good = issue(ca, tmp_path / "a")
    other = issue(trustme.CA(), tmp_path / "b")
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key((tmp_path / "a" / "key.pem").read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    cases = {
        "missing": (good.model_copy(update={"tls_cert_file": str(tmp_path / "nope.pem")}), "nope.pem"),
        "mismatched": (good.model_copy(update={"tls_key_file": other.tls_key_file}), "tls_key_file"),
        "passphrase": (good.model_copy(update={"tls_key_file": str(encrypted)}), "encrypted with a passphrase"),
    }
    for name, (config, said) in cases.items():
        gw = Gateway(config.model_copy(update={"port": free_port()}), StaticDirectory([]))
        with pytest.raises(GatewayStartError) as caught:
            await gw.start()
        assert "cannot use gateway.tls_cert_file" in str(caught.value) and said in str(caught.value), name


async def test_a_renewed_certificate_is_read_at_reconfigure_and_turning_https_off_needs_a_restart(
    tmp_path: Path
) -> None:
    first, second = trustme.CA(), trustme.CA()
    config = issue(first, tmp_path / "tls")
    async with serving(config, StaticDirectory([])) as gw:
        url = gw.address + "/health"

        async def status(ca: trustme.CA) -> int:
            async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(ca))) as http,
                        http.get(url) as resp):
                return resp.status

        assert await status(first) == 200
        issue(second, tmp_path / "tls")  # renewed in place, by another CA
        assert gw.reconfigure(gw.config) == []
        assert await status(second) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await status(first)
        (tmp_path / "tls" / "key.pem").write_text("not a key")
        with pytest.raises(GatewayStartError):
            gw.reconfigure(gw.config)  # the daemon logs it and keeps the running certificate
        assert await status(second) == 200
        plain = gw.config.model_copy(update={"tls_cert_file": None, "tls_key_file": None})
        assert gw.reconfigure(plain) == ["tls_cert_file", "tls_key_file"]
        assert await status(second) == 200
