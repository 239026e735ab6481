"""End to end with the real Mosquitto broker: `mosquitto_pub` (a real MQTT client) publishes,
hdhub's subscriber stores and raises alerts, the API and its live stream show them."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import VitalValue
from hdhub.hub import Hub
from hdhub.monitoring.devices import register_device
from hdhub.monitoring.mqtt import Subscriber
from hdhub.monitoring.service import rejection_counts
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
        # A Bundle, as over HTTP (its entries were taken as one unreadable Observation)
        entry = [{"resource": heart_rate(72, at(3))}]
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entry}
        publish(monitored.device, orjson.dumps(bundle))
        publish(monitored.device, b"{not json")
        publish(monitored.device, orjson.dumps(heart_rate(950, at(1))))
        publish(
            monitored.device,
            orjson.dumps({**heart_rate(70, at(1)), "device": {"identifier": {"value": "x"}}}),
        )
        publish(f"ghost-{secrets.token_hex(3)}", orjson.dumps(heart_rate(70, at(1))))
        deadline = time.monotonic() + 10
        while subscriber.stats.messages < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        subscriber.stop()
    with Session(monitored.hub.catalog) as s:
        assert s.scalar(select(func.count()).select_from(VitalValue)) == 2  # the first reading, the Bundle's
    admin = bearer(monitored, "admin")
    with live_server(monitored.hub) as url:
        counts = httpx.get(f"{url}/api/v1/monitoring/rejections", headers=admin).json()
    for reason in ("malformed", "out_of_range", "foreign_device", "unknown_device"):
        assert counts.get(reason, 0) >= 1, counts
    assert subscriber.stats.duplicates == 1


@contextmanager
def catalog_writes_blocked(hub: Hub) -> Iterator[None]:
    """Every write of vital values waits until the block is lifted (another writer's lock)."""
    url = hub.catalog.url
    if url.get_backend_name() == "sqlite":
        con = sqlite3.connect(str(url.database), isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()
        return
    with hub.catalog.connect() as c:
        c.exec_driver_sql("LOCK TABLE vital_values IN EXCLUSIVE MODE")  # reads go on, inserts wait
        try:
            yield
        finally:
            c.rollback()


def stored(hub: Hub, device: str) -> int:
    with Session(hub.catalog) as s:
        return (
            s.scalar(select(func.count()).select_from(VitalValue).where(VitalValue.device_id == device)) or 0
        )


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_message_is_acknowledged_only_once_stored(monitored: Monitored, broker: str) -> None:
    """kill -9 while messages wait for the catalog: the broker delivers them again to the
    next subscriber of the same session, and nothing is lost (with an acknowledgement at
    receipt, the broker forgot them)."""
    hub, device, client_id = monitored.hub, monitored.device, f"test-{secrets.token_hex(4)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDHUB_")}
    command = [sys.executable, "-m", "hdhub.cli.main", "--home", str(hub.settings.home), "monitoring", "mqtt",
               "--client-id", client_id, "--seconds", "120"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while stored(hub, device) == 0:  # published again until the subscriber is there to take it
            assert time.monotonic() < deadline, "the subscriber did not store a first reading"
            publish(device, orjson.dumps(heart_rate(70, at(10))))
            time.sleep(0.5)
        with catalog_writes_blocked(hub):
            publish(device, orjson.dumps(heart_rate(71, at(9))))
            publish(device, orjson.dumps(heart_rate(72, at(8))))
            time.sleep(1.5)  # delivered, and waiting for the catalog
            proc.kill()
            proc.wait(10)
        assert stored(hub, device) == 1
    finally:
        proc.kill()
    subscriber = Subscriber(hub.catalog, broker, client_id=client_id)
    subscriber.start()
    try:
        assert wait_for(lambda: stored(hub, device) == 3, 15), (stored(hub, device), subscriber.stats)
    finally:
        subscriber.stop()
    with Session(hub.catalog) as s:
        values = s.scalars(select(VitalValue.value).where(VitalValue.device_id == device)).all()
    assert sorted(values) == [70, 71, 72]


def test_a_device_whose_messages_cannot_be_stored_does_not_stop_the_others(
    monitored: Monitored, broker: str
) -> None:
    hub, poisoned = monitored.hub, monitored.device
    healthy = f"scale-{secrets.token_hex(4)}"
    with Session(hub.catalog) as s, s.begin():
        register_device(s, healthy, monitored.person, "scale")
    if hub.catalog.dialect.name == "sqlite":  # a real failure of the catalog, for one device only
        ddl = [f"CREATE TRIGGER poison BEFORE INSERT ON vital_values WHEN NEW.device_id = '{poisoned}' "
               "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"]  # fmt: skip
    else:
        ddl = [
            f"CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.device_id = '{poisoned}' THEN "
            "RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER poison BEFORE INSERT ON vital_values FOR EACH ROW EXECUTE FUNCTION poison()",
        ]
    with hub.catalog.begin() as c:
        for statement in ddl:
            c.exec_driver_sql(statement)
    subscriber = Subscriber(hub.catalog, broker, client_id=f"test-{secrets.token_hex(4)}")
    subscriber.start()
    try:
        publish(poisoned, orjson.dumps(heart_rate(71, at(3))))
        publish(healthy, orjson.dumps(heart_rate(72, at(3))))
        assert wait_for(lambda: stored(hub, healthy) == 1, 20), subscriber.stats
        assert wait_for(lambda: subscriber.stats.rejected == 1, 20), subscriber.stats
        publish(healthy, orjson.dumps(heart_rate(73, at(2))))  # and the subscriber goes on
        assert wait_for(lambda: stored(hub, healthy) == 2, 20), subscriber.stats
    finally:
        subscriber.stop()
    assert stored(hub, poisoned) == 0
    assert rejection_counts(hub.catalog).get("processing_error") == 1
    assert any("poisoned" in e for e in subscriber.stats.errors)
