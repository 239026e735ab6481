"""``hdhub monitoring mqtt``: devices' vitals from an MQTT broker.

Subscribes to ``hdhub/devices/+/vitals`` (QoS 1): the topic's middle level names the device,
the payload is what ``POST /api/v1/vitals`` takes (an Observation, a JSON array or a Bundle).
Messages are handled in small batches — everything that arrived within 20 ms, grouped by
device — on a worker thread, so the network loop never waits for the catalog. A payload that
is not JSON, or names another device, is counted as rejected like any other refusal.
The broker authenticates devices (see :mod:`hdhub.monitoring.devices`).

Nothing acknowledged is lost: a message is acknowledged to the broker (PUBACK) only once its
values are committed, or its refusal recorded, in receive order as MQTT requires. If the
subscriber stops or dies before that, the broker keeps the message in the session (a fixed
client id, ``clean_session`` off) and delivers it again to the next subscriber with that id;
a value delivered twice is a duplicate and ignored. While the catalog cannot be written, the
batch is tried again every ``RETRY_SECONDS`` and the broker holds the messages behind it; a
device's messages that fail ``MAX_TRIES`` times while the catalog can record that are
refused as ``processing_error``, so one message hdhub cannot handle never stops the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
from sqlalchemy.engine import Engine

from hdhub.catalog.checkpoints import Checkpoints
from hdhub.errors import ConfigError

TOPIC = "hdhub/devices/+/vitals"
BATCH_SECONDS = 0.02
RETRY_SECONDS = 1.0
MAX_ERRORS = 100  # errors kept in Stats (a catalog down for an hour fails 3,600 tries)
MAX_TRIES = 3  # a device's messages that fail this often are refused (processing_error)
MAX_PAYLOAD = 8 * 1024 * 1024
log = logging.getLogger(__name__)


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


class Message(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    qos: int


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
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, manual_ack=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self._inbox.put(Message(m.topic, m.payload, m.mid, m.qos))

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            self.stats.errors.append(f"broker refused the connection: {reason}")
            return
        client.subscribe(self.topic, qos=1)
        self._ready.set()

    def _collect(self) -> list[Message]:
        """The messages that arrive within ``BATCH_SECONDS`` (waiting that long for the first)."""
        batch: list[Message] = []
        deadline = time.monotonic() + BATCH_SECONDS
        while time.monotonic() < deadline:
            try:
                batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        self.stats.messages += len(batch)
        return batch

    def _handle(self, batch: list[Message], done: set[str | None], failures: Counter[str]) -> None:
        """Store ``batch``, one device (or the unreadable messages: key None) at a time; ``done``
        holds the keys handled, so that a retry after a failure skips them, ``failures`` how
        often each device's messages failed."""
        from sqlalchemy.orm import Session

        from hdhub.monitoring.service import ingest, record_rejections
        from hdhub.monitoring.vitals import observations as observations_of

        by_device: dict[str, list[Any]] = {}
        unreadable: Counter[str] = Counter()
        for message in batch:
            device = _device(message.topic)
            try:
                if device is None or len(message.payload) > MAX_PAYLOAD:
                    raise ValueError
                body = orjson.loads(message.payload)
            except ValueError:
                unreadable[device or ""] += 1
                continue
            by_device.setdefault(device, []).extend(observations_of(body))  # one, an array or a Bundle
        if unreadable and None not in done:
            with Session(self.catalog) as s, s.begin():
                why = {"malformed": "the payload is not JSON, too large, or the topic names no device"}
                for device, count in unreadable.items():
                    record_rejections(s, "mqtt", device or None, Counter({"malformed": count}), why)
            done.add(None)
            self.stats.rejected += sum(unreadable.values())
        for device, observations in by_device.items():
            if device in done:
                continue
            try:
                result = ingest(self.catalog, device, observations, "mqtt")
            except Exception as exc:
                failures[device] += 1
                if failures[device] < MAX_TRIES:
                    raise
                # The same messages failed MAX_TRIES times: refused with the error, so that one
                # message hdhub cannot handle never holds back every other device's.
                log.exception("MQTT: the messages of device %r could not be stored", device)
                with Session(self.catalog) as s, s.begin():
                    count = Counter({"processing_error": len(observations)})
                    record_rejections(s, "mqtt", device, count, {"processing_error": str(exc)})
                done.add(device)
                self.stats.rejected += len(observations)
                continue
            done.add(device)
            self.stats.accepted += result.accepted
            self.stats.duplicates += result.duplicates
            self.stats.rejected += sum(result.rejected.values())
            self.stats.alerts += len(result.alerts)

    def _work(self) -> None:
        batch: list[Message] = []
        done: set[str | None] = set()
        failures: Counter[str] = Counter()
        while not self._stop.is_set():
            if not batch:
                batch, done, failures = self._collect(), set(), Counter()
                if not batch:
                    continue
            try:
                self._handle(batch, done, failures)
            except Exception as exc:  # keep serving; the error is reported, the batch kept
                if len(self.stats.errors) < MAX_ERRORS:
                    self.stats.errors.append(str(exc)[:300])
                self._stop.wait(RETRY_SECONDS)
                continue
            for message in batch:  # in receive order, once all of it is stored
                self.client.ack(message.mid, message.qos)
            batch = []
            if self.on_batch:
                self.on_batch(self.stats)

    def start(self, timeout: float = 10) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise ConfigError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from None
        self.client.loop_start()
        self._checkpoints = Checkpoints(self.catalog).start()
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
        if hasattr(self, "_checkpoints"):
            self._checkpoints.stop()

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
