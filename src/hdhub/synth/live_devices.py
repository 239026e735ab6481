"""Live device readings for the demo: while ``hdhub demo`` serves, the registered home devices
keep sending, so the clinicians' alert list moves as it would on a real ward.

Every ``interval`` seconds one device, picked at random among those not revoked, sends a
reading taken now: blood pressure with heart rate, or a saturation. One reading in
``abnormal_every`` is abnormal (a hypertensive crisis, a desaturation or a tachycardia), so a
new alert appears every minute or so with the defaults. Readings go through the same ingest
as the devices' own messages (source ``demo-live``): stored, checked by the rules, deduplicated.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import MonitoringDevice
from hdhub.monitoring.service import IngestResult, ingest
from hdhub.synth.devices import bp_panel, observation, quantity

log = logging.getLogger(__name__)


class LiveFeed:
    def __init__(self, catalog: Engine, *, interval: float = 10.0, abnormal_every: int = 6,
                 seed: int | None = None) -> None:  # fmt: skip
        self.catalog = catalog
        self.interval = interval
        self.abnormal_every = abnormal_every
        self.rng = random.Random(seed)
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reading(self, device: str, now: dt.datetime) -> dict:
        """One reading of ``device`` taken at ``now``: abnormal every ``abnormal_every``-th time."""
        rng = self.rng
        abnormal = self.sent % self.abnormal_every == self.abnormal_every - 1
        kind = rng.choice(("bp", "bp", "spo2", "hr"))
        if kind == "spo2":
            value = rng.uniform(87, 90) if abnormal else rng.uniform(95, 99)
            return observation(device, "59408-5", now, valueQuantity=quantity(value, "%"))
        if kind == "hr":
            value = rng.uniform(125, 140) if abnormal else rng.uniform(60, 85)
            return observation(device, "8867-4", now, valueQuantity=quantity(value, "/min"))
        if abnormal:
            return bp_panel(device, now, rng.uniform(185, 200), rng.uniform(112, 122))
        return bp_panel(device, now, rng.uniform(110, 135), rng.uniform(65, 85))

    def tick(self, now: dt.datetime | None = None) -> IngestResult | None:
        """Send one reading of one device (None when no device is registered)."""
        now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        with Session(self.catalog) as s:
            active = select(MonitoringDevice.device_id).where(MonitoringDevice.revoked_at.is_(None))
            devices = list(s.scalars(active))
        if not devices:
            return None
        device = self.rng.choice(sorted(devices))
        result = ingest(self.catalog, device, [self.reading(device, now)], "demo-live", now=now)
        self.sent += 1
        return result

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a demo feed never takes the server down
                log.exception("demo live feed: a reading failed")

    def start(self) -> LiveFeed:
        self._thread = threading.Thread(target=self._run, name="hdhub-demo-live-feed", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
