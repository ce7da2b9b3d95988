"""The throwaway CA: a leaf valid for localhost and 127.0.0.1, verified by ordinary clients."""

from __future__ import annotations

import ipaddress
import json
import ssl

import pytest
import websockets
from cryptography import x509

from rtms_gateway.simulator import tls


def test_leaf_names_localhost_and_loopback():
    material = tls.generate_localhost_material()
    leaf = x509.load_pem_x509_certificate(material.cert_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    ca = x509.load_pem_x509_certificate(material.ca_pem)
    assert leaf.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_write_ca(tmp_path):
    material = tls.generate_localhost_material()
    path = tls.write_ca(material, tmp_path / "deep" / "ca.pem")
    assert path.read_bytes() == material.ca_pem
    with pytest.raises(ValueError):
        tls.write_ca(tls.TLSMaterial(cert_pem=b"", key_pem=b""), tmp_path / "x.pem")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_verified_by_a_default_client_context(start_simulator, tmp_path, host):
    sim = await start_simulator(ca_out=tmp_path / "ca.pem")
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    handle = sim.start_meeting(duration=30)
    url = handle.server_urls.replace("localhost", host)
    async with websockets.connect(url, ssl=ctx) as ws:
        await ws.send(json.dumps({"msg_type": 1, "rtms_stream_id": "nope", "signature": "x",
                                  "meeting_uuid": "m"}))
        assert json.loads(await ws.recv())["status_code"] == 2


async def test_untrusted_without_the_ca(start_simulator):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30)
    with pytest.raises(ssl.SSLCertVerificationError):
        await websockets.connect(handle.server_urls, ssl=ssl.create_default_context())


async def test_user_supplied_certificate(start_simulator, tmp_path):
    material = tls.generate_localhost_material()
    (tmp_path / "c.pem").write_bytes(material.cert_pem)
    (tmp_path / "k.pem").write_bytes(material.key_pem)
    sim = await start_simulator(tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")
    assert sim.ca_pem is None
    ctx = tls.client_ssl_context(material.ca_pem)
    async with websockets.connect(sim.start_meeting(duration=30).server_urls, ssl=ctx):
        pass


async def test_plain_ws(start_simulator):
    sim = await start_simulator(tls=False)
    assert sim.base_url.startswith("ws://localhost:") and sim.client_ssl_context() is None
    async with websockets.connect(sim.start_meeting(duration=30).server_urls) as ws:
        await ws.send("{}")
        assert json.loads(await ws.recv())["status_code"] == 4
