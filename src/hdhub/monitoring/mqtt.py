"""``hdhub monitoring mqtt``: devices' vitals from an MQTT broker.

Subscribes to ``hdhub/devices/+/vitals`` (QoS 1): the topic's middle level names the device,
the payload is what ``POST /api/v1/vitals`` takes (an Observation, a JSON array or a Bundle).
Messages are handled in small batches — everything that arrived within 20 ms, grouped by
device — on a worker thread, so the network loop never waits for the catalog. A payload that
is not JSON, or names another device, is counted as rejected like any other refusal.
The broker authenticates devices (see :mod:`hdhub.monitoring.devices`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.engine import Engine

from hdhub.errors import ConfigError

TOPIC = "hdhub/devices/+/vitals"
BATCH_SECONDS = 0.02
MAX_PAYLOAD = 8 * 1024 * 1024


@dataclass
class Stats:
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    errors: list[str] = field(default_factory=list)


def broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError(f"broker URL {url!r}: use mqtt://host[:port]")
    return parts.hostname, parts.port or 1883


def _device(topic: str) -> str | None:
    levels = topic.split("/")
    return levels[2] if len(levels) == 4 and levels[:2] == ["hdhub", "devices"] else None


class Subscriber:
    """The MQTT client and its worker; ``run(seconds)`` serves until stopped or timed out."""

    def __init__(self, catalog: Engine, url: str, *, topic: str = TOPIC, client_id: str = "hdhub-monitoring",
                 on_batch: Callable[[Stats], None] | None = None) -> None:  # fmt: skip
        import paho.mqtt.client as mqtt

        self.catalog = catalog
        self.host, self.port = broker_address(url)
        self.topic = topic
        self.stats = Stats()
        self.on_batch = on_batch
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self._inbox.put((msg.topic, msg.payload))

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            self.stats.errors.append(f"broker refused the connection: {reason}")
            return
        client.subscribe(self.topic, qos=1)
        self._ready.set()

    def _drain(self) -> None:
        from collections import Counter

        from hdhub.monitoring.service import ingest, record_rejections

        batch: dict[str, list[Any]] = {}
        unreadable: Counter[str] = Counter()
        deadline = time.monotonic() + BATCH_SECONDS
        while time.monotonic() < deadline:
            try:
                topic, payload = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.stats.messages += 1
            device = _device(topic)
            try:
                if device is None or len(payload) > MAX_PAYLOAD:
                    raise ValueError
                body = orjson.loads(payload)
            except ValueError:
                unreadable[device or ""] += 1
                continue
            items = body if isinstance(body, list) else [body]
            batch.setdefault(device, []).extend(items)
        for device, count in unreadable.items():
            from sqlalchemy.orm import Session

            with Session(self.catalog) as s, s.begin():
                why = {"malformed": "the payload is not JSON, too large, or the topic names no device"}
                record_rejections(s, "mqtt", device or None, Counter({"malformed": count}), why)
            self.stats.rejected += count
        for device, observations in batch.items():
            result = ingest(self.catalog, device, observations, "mqtt")
            self.stats.accepted += result.accepted
            self.stats.duplicates += result.duplicates
            self.stats.rejected += sum(result.rejected.values())
            self.stats.alerts += len(result.alerts)
        if (batch or unreadable) and self.on_batch:
            self.on_batch(self.stats)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain()
            except Exception as exc:  # keep serving; the error is reported
                self.stats.errors.append(str(exc)[:300])

    def start(self, timeout: float = 10) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise ConfigError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from None
        self.client.loop_start()
        self._worker = threading.Thread(target=self._work, name="hdhub-mqtt-worker", daemon=True)
        self._worker.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ConfigError(f"no subscription on {self.host}:{self.port} within {timeout:g} s")

    def stop(self) -> None:
        self._stop.set()
        self.client.loop_stop()
        self.client.disconnect()
        if hasattr(self, "_worker"):
            self._worker.join(5)

    def run(self, seconds: float | None = None) -> Stats:
        self.start()
        try:
            end = None if seconds is None else time.monotonic() + seconds
            while end is None or time.monotonic() < end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return self.stats
