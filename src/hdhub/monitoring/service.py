"""Device messages in, alerts out: what the HTTP route and the MQTT subscriber share.

One message (a batch of observations from one device) is one catalog transaction: its
values are stored (a replay — same device, code and time — is a duplicate and ignored), its
rejections counted by reason, and the rules and detectors run on the new values, so an alert
is visible the moment the message is acknowledged. Values reach OMOP ``measurement`` with
``hdhub monitoring flush`` (:mod:`hdhub.monitoring.omop`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from hdhub.catalog.db import MAX_ROW_ID, is_row_id, writer_lock
from hdhub.catalog.models import (
    Alert,
    MonitoredPatient,
    MonitoringDevice,
    VitalRejection,
    VitalValue,
    aware,
    utcnow,
)
from hdhub.monitoring import detectors
from hdhub.monitoring.rules import SEVERITIES, Finding, Value, evaluate, thresholds
from hdhub.monitoring.vitals import (
    DIASTOLIC,
    HEART_RATE,
    RR,
    SPO2,
    SPO2_PULSE,
    SYSTOLIC,
    WEIGHT,
    Vital,
    parse,
)

DRIFT_CODES = (HEART_RATE, SYSTOLIC, DIASTOLIC, SPO2, SPO2_PULSE, WEIGHT)
MAX_VALUE_IDS = 50


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    alerts: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
                "alerts": self.alerts}  # fmt: skip


def stamp(moment: dt.datetime) -> str:
    """Fixed-width ISO 8601 UTC (sorts as text on both catalogs)."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text[:-1] + "+00:00")  # the C parser: strptime is 10x slower


def record_rejections(s: Session, source: str, device_id: str | None, reasons: Counter[str],
                      details: dict[str, str]) -> None:  # fmt: skip
    for reason, count in reasons.items():
        s.add(VitalRejection(source=source, device_id=(device_id or "")[:64] or None, reason=reason,
                             count=count, detail=details[reason][:500]))  # fmt: skip


_COLUMNS = "person_key, device_id, code, value, effective_at, received_at, source"
_CHUNK = 1_000  # rows per statement: 7,000 parameters, within SQLite's and PostgreSQL's limits


@functools.cache
def _insert_sql(dialect: str, rows: int) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    values = ", ".join(["(" + ", ".join([mark] * 7) + ")"] * rows)
    return (
        f"INSERT INTO vital_values ({_COLUMNS}) VALUES {values} "  # noqa: S608 (placeholders only)
        "ON CONFLICT (device_id, code, effective_at) DO NOTHING RETURNING id, code, value, effective_at"
    )


def _insert(s: Session, rows: list[tuple[Any, ...]]) -> list[tuple[int, str, float, str]]:
    """Insert, ignoring replays; returns the rows inserted (id, code, value, effective_at).

    Multi-row INSERT … ON CONFLICT DO NOTHING RETURNING, as the driver's own SQL on its own
    cursor (one text per row count, cached): building it through SQLAlchemy cost more than
    running it (60 ms for 600 rows compiled per call; 3 ms with insertmanyvalues; under 1 ms
    this way), and reading the returned rows through SQLAlchemy's result cost a fifth more."""
    connection = s.connection()
    dialect = connection.dialect.name
    cursor = connection.connection.cursor()  # the driver's own: its rows, no per-row wrapping
    out: list[tuple[int, str, float, str]] = []
    try:
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            cursor.execute(_insert_sql(dialect, len(chunk)), [value for row in chunk for value in row])
            out += cursor.fetchall()
    finally:
        cursor.close()
    return out


def _received(now: dt.datetime, dialect: str) -> Any:
    """``received_at`` as the catalog stores it (SQLAlchemy keeps SQLite datetimes as text)."""
    if dialect == "sqlite":
        return now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


class _Device(NamedTuple):
    person_key: str
    revoked: bool
    thresholds: str | None
    heart_failure: bool


def _device(conn: Connection, device_id: str) -> _Device | None:
    row = conn.execute(
        select(MonitoringDevice.person_key, MonitoringDevice.revoked_at,
               MonitoredPatient.thresholds, MonitoredPatient.heart_failure)
        .outerjoin(MonitoredPatient, MonitoredPatient.person_key == MonitoringDevice.person_key)
        .where(MonitoringDevice.device_id == device_id)
    ).first()  # fmt: skip
    if row is None:
        return None
    return _Device(row.person_key, row.revoked_at is not None, row.thresholds, bool(row.heart_failure))


_INGESTERS: dict[tuple[int, str], ThreadPoolExecutor] = {}  # (process id, catalog dialect)
_INGESTERS_LOCK = threading.Lock()


def ingester(catalog: Engine) -> ThreadPoolExecutor:
    """This process's threads for device messages, first come first served: one for an SQLite
    catalog, whose writers take turns (a second message parsed beside a write took the
    interpreter from it, and made each write last half as long again when two server processes
    shared the writer lock), four for PostgreSQL's, whose writers do not. Threads of their own:
    messages waiting never hold those the server's other requests use (an alert stream's polls
    waited behind them). A forked child starts its own."""
    dialect = catalog.dialect.name
    with _INGESTERS_LOCK:
        pool = _INGESTERS.get((os.getpid(), dialect))
        if pool is None:
            threads = 1 if dialect == "sqlite" else 4
            pool = ThreadPoolExecutor(threads, thread_name_prefix="hdhub-vitals")
            _INGESTERS[(os.getpid(), dialect)] = pool
        return pool


def ingest(
    catalog: Engine, device_id: str, body: Any, source: str, now: dt.datetime | None = None
) -> IngestResult:
    """Store one message of ``device_id`` and raise its alerts; see the module docstring.

    Writers are one at a time across processes (:func:`~hdhub.catalog.db.writer_lock`), so the
    write bounds the rate, and all else is done before it: the parse, the device, the rows, and
    the rules and detectors, on the values stored so far. The write inserts the rows; if all
    were new, it raises the alerts found; if some were replays, it runs the rules again on the
    new ones alone. Call it from :func:`ingester` in a server."""
    now = now or dt.datetime.now(dt.UTC)
    result = IngestResult()
    parsed = parse(body, device_id, now)
    reasons = Counter(r.reason for r in parsed.rejections)
    details = {r.reason: r.detail for r in reversed(parsed.rejections)}
    with catalog.connect() as conn:  # reads: they wait for no writer
        device = _device(conn, device_id)
        if device is not None and not device.revoked and parsed.vitals:
            unique = _unique(parsed.vitals)
            rules = _Rules(device, parsed.vitals)
            planned = [Value(0, code, v.value, v.effective) for (code, _), v in unique.items()]
            found = rules.findings(_Stored(conn, device.person_key), planned)
    if device is None or device.revoked:
        why = "unknown_device" if device is None else "revoked_device"
        reasons = Counter({why: len(parsed.vitals) + len(parsed.rejections) or 1})
        details = {why: f"device {device_id[:64]!r} is not registered" if device is None
                   else f"device {device_id!r} was revoked"}  # fmt: skip
    if device is None or device.revoked or not parsed.vitals:
        with writer_lock(catalog), Session(catalog) as s, s.begin():
            record_rejections(s, source, device_id, reasons, details)
        result.rejected = dict(reasons)
        return result
    received = _received(now, catalog.dialect.name)
    rows = [(device.person_key, device_id, code, v.value, at, received, source)
            for (code, at), v in unique.items()]  # fmt: skip
    with writer_lock(catalog), Session(catalog) as s, s.begin():
        inserted = _insert(s, rows)
        result.accepted = len(inserted)
        result.duplicates = len(parsed.vitals) - len(inserted)
        record_rejections(s, source, device_id, reasons, details)
        result.rejected = dict(reasons)
        if len(inserted) == len(rows):  # all new: the findings stand, with the values' ids
            ids = {(code, at): i for i, code, _, at in inserted}
            findings = [_with_ids(f, ids) for f in found]
        else:  # replays among them: the rules see the new values alone
            new = [Value(i, code, value, unique[(code, at)].effective) for i, code, value, at in inserted]
            before = min((v.id for v in new), default=0)
            findings = rules.findings(_Stored(s.connection(), device.person_key, before), new) if new else []
        result.alerts = [_raise(s, device.person_key, f, now).id for f in findings]
    return result


def _unique(vitals: list[Vital]) -> dict[tuple[str, str], Vital]:
    """The message's values by (code, stamped time): the first of any repeated in it."""
    unique: dict[tuple[str, str], Vital] = {}
    stamps: dict[dt.datetime, str] = {}  # a panel's values share their time
    for v in vitals:
        at = stamps.get(v.effective) or stamps.setdefault(v.effective, stamp(v.effective))
        unique.setdefault((v.code, at), v)
    return unique


def _with_ids(finding: Finding, ids: dict[tuple[str, str], int]) -> Finding:
    """A finding on values planned (id 0) with the ids they were stored under."""
    values = tuple(v._replace(id=ids[(v.code, stamp(v.at))]) if v.id == 0 else v for v in finding.values)
    return dataclasses.replace(finding, values=values)


class _Stored:
    """A patient's values stored before id ``before`` (all, by default), as the rules and the
    drift detector read them."""

    def __init__(self, connection: Connection, person_key: str, before: int = MAX_ROW_ID) -> None:
        self.connection, self.person_key, self.before = connection, person_key, before

    def history(self, code: str, since: dt.datetime) -> list[Value]:
        rows = self.connection.execute(
            select(VitalValue.id, VitalValue.value, VitalValue.effective_at)
            .where(
                VitalValue.person_key == self.person_key,
                VitalValue.code == code,
                VitalValue.id < self.before,
                VitalValue.effective_at >= stamp(since),
            )
            .order_by(VitalValue.effective_at.desc())
            .limit(1_000)
        )
        return [Value(i, code, value, _at(at)) for i, value, at in rows]

    def baselines(self, latest: list[Value]) -> dict[str, list[float]]:
        """Each code's baseline, in one statement: the values in the ``DRIFT_DAYS`` before the
        code's latest new value, most recent first."""
        if not latest:
            return {}
        params: list[Any] = []
        for v in latest:
            since = v.at - dt.timedelta(days=detectors.DRIFT_DAYS)
            params += [self.person_key, v.code, self.before, stamp(since), stamp(v.at)]
        cursor = self.connection.connection.cursor()  # the driver's rows (up to 1,200), unwrapped
        try:
            cursor.execute(_baseline_sql(self.connection.dialect.name, len(latest)), params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        out: dict[str, list[float]] = {}
        for code, value in rows:
            out.setdefault(code, []).append(value)
        return out


@functools.cache
def _baseline_sql(dialect: str, codes: int) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    where = " AND ".join(
        f"{c} {mark}" for c in ("person_key =", "code =", "id <", "effective_at >=", "effective_at <")
    )
    one = f"SELECT * FROM (SELECT code, value FROM vital_values WHERE {where} "  # noqa: S608 (placeholders)
    one += f"ORDER BY effective_at DESC LIMIT {detectors.DRIFT_BASELINE}) AS b"
    return " UNION ALL ".join(f"{one}{k}" for k in range(codes))


class _Rules:
    """The rules and detectors for one message of a device's patient."""

    def __init__(self, device: _Device, vitals: list[Vital]) -> None:
        self.config = thresholds(orjson.loads(device.thresholds) if device.thresholds else None)
        self.heart_failure = device.heart_failure
        self.rr = {stamp(v.effective): v.rr for v in vitals if v.code == RR}

    def findings(self, stored: _Stored, new: list[Value]) -> list[Finding]:
        """The findings of the patient's ``new`` values against those ``stored``."""
        found = evaluate(new, self.config, heart_failure=self.heart_failure, history=stored.history)
        latest: dict[str, Value] = {}  # the latest new value of each code, against its baseline
        for v in new:
            if v.code in DRIFT_CODES and (v.code not in latest or v.at > latest[v.code].at):
                latest[v.code] = v
        baselines = stored.baselines(list(latest.values()))
        for code, value in latest.items():
            z = detectors.robust_z(value.value, baselines.get(code, []))
            if z is not None and abs(z) >= detectors.DRIFT_Z:
                message = f"{value.value:g} is far from this patient's usual values (robust z {z:+.1f})"
                found.append(Finding(f"drift_{code}", "low", message, (value,)))
        for v in new:
            if v.code == RR:
                screen = detectors.screen_rr(self.rr.get(stamp(v.at), ()))
                if screen is not None and screen.irregular:
                    message = (
                        f"irregular rhythm, possible atrial fibrillation (nRMSSD {screen.nrmssd:.2f}, "
                        f"entropy {screen.entropy:.2f}, TPR {screen.tpr:.2f}): confirm on an ECG"
                    )
                    found.append(Finding("irregular_rhythm", "medium", message, (v,)))
        return found


def _raise(s: Session, person_key: str, finding: Finding, now: dt.datetime) -> Alert:
    """Create the alert, or update the patient's open alert of the same rule (deduplicated:
    a count, the latest time, the severity raised if this one is worse)."""
    key = f"{person_key}:{finding.rule}"
    first = stamp(min(v.at for v in finding.values))
    last = stamp(max(v.at for v in finding.values))
    ids = [v.id for v in finding.values]
    alert = s.scalar(select(Alert).where(Alert.dedup_key == key, Alert.status == "open"))
    if alert is None:
        alert = Alert(person_key=person_key, rule=finding.rule, severity=finding.severity, status="open",
                      message=finding.message[:500], dedup_key=key, value_ids=orjson.dumps(ids).decode(),
                      count=1, first_at=first, last_at=last, created_at=now, updated_at=now)  # fmt: skip
        s.add(alert)
        s.flush()
        return alert
    alert.count += 1
    alert.last_at = max(alert.last_at, last)
    alert.first_at = min(alert.first_at, first)
    alert.value_ids = orjson.dumps((orjson.loads(alert.value_ids) + ids)[-MAX_VALUE_IDS:]).decode()
    if SEVERITIES.index(finding.severity) > SEVERITIES.index(alert.severity):
        alert.severity, alert.message = finding.severity, finding.message[:500]
    alert.updated_at = now
    s.flush()
    return alert


def list_alerts(
    s: Session,
    *,
    status: str | None = None,
    severity: str | None = None,
    patient: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts by status, severity and patient, newest first; with ``since``, those changed after
    it, oldest first (the live stream)."""
    stmt = select(Alert)
    if status:
        stmt = stmt.where(Alert.status == status)
    if severity:
        stmt = stmt.where(Alert.severity == severity)
    if patient:
        stmt = stmt.where(Alert.person_key == patient)
    if since is not None:
        stmt = stmt.where(Alert.updated_at > since).order_by(Alert.updated_at, Alert.id)
    else:
        stmt = stmt.order_by(Alert.updated_at.desc(), Alert.id.desc())
    return list(s.scalars(stmt.limit(limit)))


def alert_view(s: Session, alert: Alert, *, values: bool = False) -> dict[str, Any]:
    out = {
        "id": alert.id, "patient": alert.person_key, "rule": alert.rule, "severity": alert.severity,
        "status": alert.status, "message": alert.message, "count": alert.count, "first_at": alert.first_at,
        "last_at": alert.last_at, "created_at": stamp(aware(alert.created_at)),
        "acknowledged_by": alert.acknowledged_by, "value_ids": orjson.loads(alert.value_ids),
    }  # fmt: skip
    if values:
        rows = s.scalars(
            select(VitalValue).where(VitalValue.id.in_(out["value_ids"])).order_by(VitalValue.id)
        )
        out["values"] = [{"id": v.id, "code": v.code, "value": v.value, "effective_at": v.effective_at,
                          "device": v.device_id} for v in rows]  # fmt: skip
    return out


def get_alert(s: Session, alert_id: int) -> Alert:
    from hdhub.errors import NotFound

    alert = s.get(Alert, alert_id) if is_row_id(alert_id) else None
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def acknowledge(s: Session, alert_id: int, by: str) -> Alert:
    from hdhub.errors import Conflict

    alert = get_alert(s, alert_id)
    if alert.status != "open":
        raise Conflict(f"alert {alert_id} is already {alert.status}")
    alert.status, alert.acknowledged_by, alert.acknowledged_at = "acknowledged", by, utcnow()
    alert.updated_at = utcnow()
    return alert


def rejection_counts(catalog: Engine, since: dt.datetime | None = None) -> dict[str, int]:
    from sqlalchemy import func

    with Session(catalog) as s:
        stmt = select(VitalRejection.reason, func.sum(VitalRejection.count)).group_by(VitalRejection.reason)
        if since is not None:
            stmt = stmt.where(VitalRejection.at >= since)
        return {reason: int(n) for reason, n in s.execute(stmt)}
