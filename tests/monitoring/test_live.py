"""End to end with the real Mosquitto broker: `mosquitto_pub` (a real MQTT client) publishes,
hdhub's subscriber stores and raises alerts, the API and its live stream show them."""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
import time
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import VitalValue
from hdhub.monitoring.mqtt import Subscriber
from tests.conftest import _require_services, live_server
from tests.monitoring.conftest import Monitored, at, bearer, blood_pressure, heart_rate

pytestmark = pytest.mark.integration
BROKER = ("127.0.0.1", 1883)


@pytest.fixture
def broker() -> str:
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        if _require_services():
            raise
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (scripts/services.sh starts Mosquitto)")
    return "mqtt://127.0.0.1:1883"


def publish(device: str, payload: bytes) -> None:
    topic = f"hdhub/devices/{device}/vitals"
    command = ["/usr/bin/mosquitto_pub", "-h", BROKER[0], "-p", str(BROKER[1]), "-q", "1", "-t", topic, "-s"]
    subprocess.run(command, input=payload, check=True, timeout=10)


def test_a_published_hypertensive_reading_becomes_a_live_alert(monitored: Monitored, broker: str) -> None:
    clinician = bearer(monitored, "clinician")
    subscriber = Subscriber(monitored.hub.catalog, broker, client_id=f"test-{secrets.token_hex(4)}")
    subscriber.start()
    events: list[tuple[float, dict[str, Any]]] = []
    try:
        with live_server(monitored.hub) as url:

            def listen() -> None:
                with httpx.stream("GET", f"{url}/api/v1/alerts/stream", params={"seconds": 8},
                                  headers=clinician, timeout=15) as stream:  # fmt: skip
                    for line in stream.iter_lines():
                        if line.startswith("data: "):
                            events.append((time.perf_counter(), orjson.loads(line[6:])))

            listener = threading.Thread(target=listen)
            listener.start()
            time.sleep(0.5)  # the stream is open
            sent = time.perf_counter()
            publish(monitored.device, orjson.dumps(blood_pressure(192, 114, at(0))))
            seen = None
            while seen is None and time.perf_counter() - sent < 10:
                found = httpx.get(f"{url}/api/v1/alerts", params={"patient": monitored.person},
                                  headers=clinician).json()  # fmt: skip
                seen = (time.perf_counter(), found[0]) if found else None
                time.sleep(0.02)
            listener.join()
    finally:
        subscriber.stop()
    assert seen is not None, subscriber.stats
    api_at, alert = seen
    assert (alert["rule"], alert["severity"], alert["status"]) == ("bp_grade", "urgent", "open")
    streamed = [(t, e) for t, e in events if e["id"] == alert["id"]]
    assert streamed, events
    print(f"alert latency: API {api_at - sent:.3f} s, live stream {streamed[0][0] - sent:.3f} s")


def test_replays_and_bad_messages_are_refused_and_counted(monitored: Monitored, broker: str) -> None:
    subscriber = Subscriber(monitored.hub.catalog, broker, client_id=f"test-{secrets.token_hex(4)}")
    subscriber.start()
    reading = orjson.dumps([heart_rate(71, at(2))])
    try:
        publish(monitored.device, reading)
        publish(monitored.device, reading)  # replayed
        publish(monitored.device, b"{not json")
        publish(monitored.device, orjson.dumps(heart_rate(950, at(1))))
        publish(
            monitored.device,
            orjson.dumps({**heart_rate(70, at(1)), "device": {"identifier": {"value": "x"}}}),
        )
        publish(f"ghost-{secrets.token_hex(3)}", orjson.dumps(heart_rate(70, at(1))))
        deadline = time.monotonic() + 10
        while subscriber.stats.messages < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        subscriber.stop()
    with Session(monitored.hub.catalog) as s:
        assert s.scalar(select(func.count()).select_from(VitalValue)) == 1  # only the first reading
    admin = bearer(monitored, "admin")
    with live_server(monitored.hub) as url:
        counts = httpx.get(f"{url}/api/v1/monitoring/rejections", headers=admin).json()
    for reason in ("malformed", "out_of_range", "foreign_device", "unknown_device"):
        assert counts.get(reason, 0) >= 1, counts
    assert subscriber.stats.duplicates == 1
