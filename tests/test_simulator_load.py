"""Twenty meetings at once, mixed products, through `run_simulation`."""

from __future__ import annotations

from rtms_gateway.protocol.constants import MediaType, Product
from rtms_gateway.simulator import SimulationConfig, run_simulation
from tests.conftest import CLIENT_ID, CLIENT_SECRET, SECRET_TOKEN
from tests.peers.minimal_client import MediaRequest, MinimalClient


async def test_twenty_concurrent_meetings(tmp_path):
    ca = tmp_path / "ca.pem"
    client = MinimalClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN, ca=ca,
                           media=[MediaRequest("transcript", 8), MediaRequest("audio", 1), MediaRequest("chat", 16)])
    url = await client.start()
    try:
        config = SimulationConfig(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN, webhook_url=url,
            ca_out=ca, meetings=20, duration=2.0, products=tuple(Product), seed=3,
            media=MediaType.AUDIO | MediaType.TRANSCRIPT | MediaType.CHAT, keepalive_interval=0.5,
        )
        summary = await run_simulation(config)
    finally:
        await client.close()
    assert summary.ok and len(summary.records) == 20
    assert len({r.rtms_stream_id for r in summary.records}) == 20
    assert {r.product for r in summary.records} == {p.value for p in Product}
    for record in summary.records:
        log = client.streams[record.rtms_stream_id]
        assert record.outcome == "completed", record.summary_line()
        assert len(log.of_type(17, "transcript")) == record.sent.transcripts > 0
        assert len(log.of_type(14, "audio")) == record.sent.audio_frames >= 100  # 2 s at 50 a second
        assert len(log.of_type(18, "chat")) == record.sent.chat > 0
        assert [d.ok for d in record.webhooks] == [True, True]
