"""The DIMSE service class provider (pynetdicom): C-ECHO, C-STORE, C-FIND, C-MOVE.

Only calling AE titles on the allow-list may associate; C-MOVE sends only to the
destinations configured (AE title -> host and port). Instances received by C-STORE are
stored exactly as they arrived on the wire (file meta + the dataset bytes, no re-encoding)
through the same store as STOW-RS. C-FIND answers from the catalog index through the
QIDO-RS query code. Nagle's algorithm is turned off on every connection: with it DIMSE
is 10 to 40 times slower.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, StoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from hdhub.errors import NotFound, ValidationError
from hdhub.imaging.qido import LEVELS, MAX_LIMIT, parse_query, search
from hdhub.imaging.reach import PatientRef, reached
from hdhub.imaging.store import STORED, instance_rows, read_object, store_for_hub, study_patients
from hdhub.security.principal import Principal

SUCCESS, PENDING, CANNOT_UNDERSTAND, MOVE_DESTINATION_UNKNOWN = 0x0000, 0xFF00, 0xC000, 0xA801
UNABLE_TO_PROCESS, OUT_OF_RESOURCES = 0xC001, 0xA700
MAX_FIND_MATCHES = 10_000  # a C-FIND with more matches is refused: narrow the query
log = logging.getLogger(__name__)
LEVEL = {"STUDY": "study", "SERIES": "series", "IMAGE": "instance"}


MAX_ASSOCIATIONS = 64


@dataclass
class ScpConfig:
    ae_title: str = "HDHUB"
    allowed_callers: list[str] = field(default_factory=list)  # empty: nobody may associate
    move_destinations: dict[str, tuple[str, int]] = field(default_factory=dict)


def _nodelay(event: Any) -> None:
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _caller(event: Any) -> Principal:
    requestor = event.assoc.requestor
    return Principal(
        name=f"dicom:{requestor.ae_title}", roles=frozenset(), kind="dicom", source=requestor.address
    )


def _audit(hub: Any, event: Any, action: str, outcome: str, studies: Iterable[str | None],
           patients: Iterable[PatientRef], **detail: Any) -> None:  # fmt: skip
    """One audit event naming every study and patient the operation reached: patients as
    (Patient ID, IssuerOfPatientID or None), listed with their issuers in the detail's
    ``patient_issuers`` as DICOMweb's events do."""
    hub.audit.record(_caller(event), action, outcome=outcome, **reached(studies, patients, **detail))


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status


def _find_params(identifier: Dataset) -> tuple[str, list[tuple[str, str]], str | None, str | None]:
    """The QIDO query of a C-FIND identifier: (level, matching keys, study, series)."""
    level = LEVEL.get(str(identifier.get("QueryRetrieveLevel", "")).upper())
    if level is None:
        raise ValidationError("QueryRetrieveLevel must be STUDY, SERIES or IMAGE")
    known = {a.keyword for a in LEVELS[level]}
    params = []
    for elem in identifier:
        if elem.keyword in known and elem.value not in (None, ""):
            value = "\\".join(str(v) for v in elem.value) if elem.VM > 1 else str(elem.value)
            params.append((elem.keyword, value))
    study = identifier.get("StudyInstanceUID") or None
    series = identifier.get("SeriesInstanceUID") or None
    higher = {"StudyInstanceUID": level != "study", "SeriesInstanceUID": level == "instance"}
    for keyword, above in higher.items():
        if above and keyword in identifier and identifier[keyword].VM > 1:  # the hierarchical model
            raise ValidationError(f"{keyword} of a higher level is one UID, not a list")
    return (
        level,
        params,
        (str(study) if study and level != "study" else None),
        (str(series) if series and level == "instance" else None),
    )


def _matches(hub: Any, identifier: Dataset) -> Iterator[dict[str, Any]]:
    level, params, study, series = _find_params(identifier)
    offset = 0
    while True:
        query = parse_query([*params, ("limit", str(MAX_LIMIT)), ("offset", str(offset))], level)
        page = search(hub.catalog, query, "", study, series)
        yield from page
        if len(page) < MAX_LIMIT:
            return
        offset += MAX_LIMIT


def _value(match: dict[str, Any], tag: str) -> str | None:
    values = match.get(tag, {}).get("Value")
    return str(values[0]) if values else None


def make_ae(hub: Any, config: ScpConfig) -> tuple[AE, list[tuple[Any, Any]]]:
    """The application entity and its event handlers (give both to ``start_server``)."""
    ae = AE(ae_title=config.ae_title)
    ae.require_calling_aet = list(config.allowed_callers) or ["\x00nobody"]
    # A connection counts against maximum_associations from the moment it opens: with
    # pynetdicom's defaults (10, and 30 s to send the association request), ten idle sockets
    # from anywhere kept every modality out. Room for more, and 10 s to ask.
    ae.maximum_associations = MAX_ASSOCIATIONS
    ae.acse_timeout = 10
    ae.supported_contexts = AllStoragePresentationContexts
    for context in (
        Verification,
        StudyRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelMove,
    ):
        ae.add_supported_context(context)
    # C-MOVE sub-operations propose these (DICOM allows 128 per association: the common ones).
    ae.requested_contexts = StoragePresentationContexts

    def on_store(event: Any) -> Any:
        data = event.encoded_dataset(include_meta=True)
        outcome = store_for_hub(hub, [(data, f"C-STORE from {event.assoc.requestor.ae_title}")])[0]
        try:
            _audit(
                hub, event, "imaging.c-store", "success" if outcome.status == STORED else "failure",
                [outcome.study_uid], [(outcome.patient_id, outcome.issuer)],
                sop_instance_uid=outcome.sop_instance_uid,
                reason=outcome.reason,
            )  # fmt: skip
        except Exception:
            log.exception("C-STORE: the audit event could not be written")
            return _status(UNABLE_TO_PROCESS, "audit log unavailable")
        if outcome.status == STORED:
            return SUCCESS
        if outcome.duplicate and outcome.identical:  # sent again, byte for byte: not an error
            return SUCCESS
        if outcome.duplicate:  # never "Success": a modality told so may delete its only copy
            return _status(CANNOT_UNDERSTAND, "already stored with other content")
        return _status(CANNOT_UNDERSTAND, outcome.reason or "refused")

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        # Every match is found and the audit event written before the first is sent.
        try:
            matches = []
            for match in _matches(hub, event.identifier):
                matches.append(match)
                if len(matches) > MAX_FIND_MATCHES:
                    yield (
                        _status(OUT_OF_RESOURCES, f"over {MAX_FIND_MATCHES} matches: narrow the query"),
                        None,
                    )
                    return
        except ValidationError as exc:
            yield _status(UNABLE_TO_PROCESS, exc.message), None
            return
        try:
            _audit(
                hub, event, "imaging.c-find", "success",
                [_value(m, "0020000D") for m in matches],
                [(_value(m, "00100020"), _value(m, "00100021")) for m in matches],
                level=str(event.identifier.get("QueryRetrieveLevel", "")), matches=len(matches),
            )  # fmt: skip
        except Exception:
            log.exception("C-FIND: the audit event could not be written")
            yield _status(UNABLE_TO_PROCESS, "audit log unavailable"), None
            return
        for match in matches:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            ds = Dataset.from_json({k: v for k, v in match.items() if k != "00081190"})
            ds.QueryRetrieveLevel = event.identifier.QueryRetrieveLevel
            yield PENDING, ds

    def on_move(event: Any) -> Iterator[Any]:
        name = event.move_destination
        name = name.decode() if isinstance(name, bytes) else str(name)
        destination = config.move_destinations.get(name.strip())
        if destination is None:
            yield None, None
            return
        identifier = event.identifier
        study = str(identifier.get("StudyInstanceUID", "")) or None
        if study is None:
            yield destination
            yield 0
            return
        series = str(identifier.get("SeriesInstanceUID", "")) or None
        sop = str(identifier.get("SOPInstanceUID", "")) or None
        try:
            rows = instance_rows(hub.catalog, study, series, sop)
        except NotFound:
            rows = []
        try:
            _audit(
                hub, event, "imaging.c-move", "success", [study],
                study_patients(hub.catalog, [study]) if rows else [],
                destination=name.strip(), instances=len(rows),
            )  # fmt: skip
        except Exception:
            log.exception("C-MOVE: the audit event could not be written")
            yield _status(UNABLE_TO_PROCESS, "audit log unavailable"), None
            return
        yield destination
        yield len(rows)
        for row in rows:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            # force: an instance stored without preamble or File Meta (STOW takes them) is sent too
            yield PENDING, pydicom.dcmread(BytesIO(read_object(hub.objects, row)), force=True)

    handlers = [
        (evt.EVT_CONN_OPEN, _nodelay),
        (evt.EVT_C_STORE, on_store),
        (evt.EVT_C_FIND, on_find),
        (evt.EVT_C_MOVE, on_move),
    ]
    return ae, handlers


def serve(hub: Any, config: ScpConfig, host: str, port: int, block: bool = True) -> Any:
    """Listen for associations; with ``block=False`` returns the running server."""
    ae, handlers = make_ae(hub, config)
    return ae.start_server((host, port), block=block, evt_handlers=handlers)
