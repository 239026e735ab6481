"""QIDO-RS search of studies, series and instances over the catalog index (PS3.18 10.6),
answered as DICOM JSON.

Matching (PS3.4 C.2.2.2): single value, universal (empty), wildcards ``*`` and ``?`` on
text attributes, date and time ranges (``20200101-20201231``, ``-20201231``,
``20200101-``), UID lists (``uid1,uid2`` or ``uid1\\uid2``). With ``fuzzymatching=true``
a person name matches case-insensitively at the start of any of its components.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy
from hdhub.errors import ValidationError
from hdhub.imaging.dicom_json import integer_string

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: str
    vr: str
    column: Any = None  # None: computed


STUDY_ATTRIBUTES = [
    Attribute("StudyDate", "00080020", "DA", DicomStudy.study_date),
    Attribute("StudyTime", "00080030", "TM", DicomStudy.study_time),
    Attribute("AccessionNumber", "00080050", "SH", DicomStudy.accession_number),
    Attribute("ModalitiesInStudy", "00080061", "CS"),
    Attribute("ReferringPhysicianName", "00080090", "PN", DicomStudy.referring_physician_name),
    Attribute("StudyDescription", "00081030", "LO", DicomStudy.study_description),
    Attribute("PatientName", "00100010", "PN", DicomStudy.patient_name),
    Attribute("PatientID", "00100020", "LO", DicomStudy.patient_id),
    # Who issued the Patient ID (a site): one Patient ID may be two patients of two sites.
    Attribute("IssuerOfPatientID", "00100021", "LO", DicomStudy.issuer_of_patient_id),
    Attribute("PatientBirthDate", "00100030", "DA", DicomStudy.patient_birth_date),
    Attribute("PatientSex", "00100040", "CS", DicomStudy.patient_sex),
    Attribute("StudyInstanceUID", "0020000D", "UI", DicomStudy.study_uid),
    Attribute("StudyID", "00200010", "SH", DicomStudy.study_id),
    Attribute("NumberOfStudyRelatedSeries", "00201206", "IS"),
    Attribute("NumberOfStudyRelatedInstances", "00201208", "IS"),
]
SERIES_ATTRIBUTES = [
    Attribute("Modality", "00080060", "CS", DicomSeries.modality),
    Attribute("SeriesDescription", "0008103E", "LO", DicomSeries.series_description),
    Attribute("BodyPartExamined", "00180015", "CS", DicomSeries.body_part_examined),
    Attribute("SeriesInstanceUID", "0020000E", "UI", DicomSeries.series_uid),
    Attribute("SeriesNumber", "00200011", "IS", DicomSeries.series_number),
    Attribute("NumberOfSeriesRelatedInstances", "00201209", "IS"),
]
INSTANCE_ATTRIBUTES = [
    Attribute("SOPClassUID", "00080016", "UI", DicomInstance.sop_class_uid),
    Attribute("SOPInstanceUID", "00080018", "UI", DicomInstance.sop_instance_uid),
    Attribute("InstanceNumber", "00200013", "IS", DicomInstance.instance_number),
]
# The attributes a search at each level may match on and returns (higher levels included).
LEVELS = {
    "study": STUDY_ATTRIBUTES,
    "series": STUDY_ATTRIBUTES + SERIES_ATTRIBUTES,
    "instance": STUDY_ATTRIBUTES + SERIES_ATTRIBUTES + INSTANCE_ATTRIBUTES,
}
_DATE = re.compile(r"^[0-9]{8}\Z")
_TIME = re.compile(r"^[0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?\Z")


@dataclass
class Query:
    level: str  # study, series or instance
    filters: list[tuple[Attribute, str]]
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    fuzzy: bool = False


def parse_query(params: list[tuple[str, str]], level: str = "study") -> Query:
    """A QIDO-RS query from its URL parameters; ValidationError (400) when malformed."""
    names = {a.keyword.lower(): a for a in LEVELS[level]} | {a.tag.lower(): a for a in LEVELS[level]}
    query = Query(level, filters=[])
    for name, value in params:
        key = name.lower()
        if key == "limit":
            query.limit = _int(name, value, 1, MAX_LIMIT)
        elif key == "offset":
            query.offset = _int(name, value, 0, 10**9)
        elif key == "fuzzymatching":
            if value not in ("true", "false"):
                raise ValidationError("fuzzymatching: true or false")
            query.fuzzy = value == "true"
        elif key == "includefield":
            continue  # every indexed study attribute is always returned
        elif key in names:
            if len(value) > 1024:
                raise ValidationError(f"{name}: value too long")
            query.filters.append((names[key], value))
        else:
            raise ValidationError(f"{name} is not a {level}-level matching key of this archive")
    return query


def _int(name: str, value: str, low: int, high: int) -> int:
    if not value.isdecimal() or not low <= int(value) <= high:
        raise ValidationError(f"{name}: an integer from {low} to {high}")
    return int(value)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _text_match(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """Single value or wildcard matching, case-sensitive (PS3.4 C.2.2.2.1 and C.2.2.2.4).

    SQLite's LIKE ignores case, so SQLite matches with GLOB (case-sensitive; a prefix
    pattern uses the index); PostgreSQL's LIKE is case-sensitive already."""
    if "*" not in value and "?" not in value:
        return column == value
    if dialect == "sqlite":
        return column.op("GLOB")(value.replace("[", "[[]"))
    return column.like(_like(value), escape="\\")


def _range(attr: Attribute, value: str, pattern: re.Pattern[str]) -> ColumnElement[bool]:
    low, sep, high = value.partition("-")
    for part in (low, high) if sep else (low,):
        if part and not pattern.match(part):
            raise ValidationError(f"{attr.keyword}: {value!r} is not a valid {attr.vr} value or range")
    if not sep:
        return attr.column == low
    conditions = [attr.column.is_not(None)]
    if low:
        conditions.append(attr.column >= low)
    if high:
        conditions.append(attr.column <= high + ("235959.999999" if attr.vr == "TM" else ""))
    return and_(*conditions)


def _fuzzy_name(column: Any, value: str) -> ColumnElement[bool]:
    start = _like(value.lower()).rstrip("%") + "%"
    lowered = func.lower(column)
    return or_(*(lowered.like(prefix + start, escape="\\") for prefix in ("", "%^", "% ")))


def _condition(attr: Attribute, value: str, fuzzy: bool, dialect: str) -> ColumnElement[bool] | None:
    if value == "":
        return None  # universal matching
    if attr.keyword == "ModalitiesInStudy":
        wanted = [v for v in re.split(r"[,\\]", value) if v]
        other = aliased(DicomSeries)
        return (
            exists()
            .where(other.study_uid == DicomStudy.study_uid, other.modality.in_(wanted))
            .correlate(DicomStudy)
        )
    if attr.column is None:
        raise ValidationError(f"{attr.keyword} cannot be matched, only returned")
    if attr.vr == "UI":
        return attr.column.in_([v for v in re.split(r"[,\\]", value) if v])
    if attr.vr == "DA":
        return _range(attr, value, _DATE)
    if attr.vr == "TM":
        return _range(attr, value, _TIME)
    if attr.vr == "PN" and fuzzy:
        return _fuzzy_name(attr.column, value)
    return _text_match(attr.column, value, dialect)


def search(
    catalog: Engine, query: Query, base_url: str, study_uid: str | None = None, series_uid: str | None = None
) -> list[dict[str, Any]]:
    """Matches at ``query.level`` (within a study or series named in the path)."""
    stmt = select(*_COLUMNS[query.level])
    if query.level == "study":
        order = [DicomStudy.study_date.desc(), DicomStudy.study_uid.desc()]
    elif query.level == "series":
        stmt = stmt.join(DicomSeries, DicomSeries.study_uid == DicomStudy.study_uid)
        order = [DicomStudy.study_uid, DicomSeries.series_uid]
    else:
        stmt = stmt.join(DicomSeries, DicomSeries.study_uid == DicomStudy.study_uid).join(
            DicomInstance, DicomInstance.series_uid == DicomSeries.series_uid
        )
        order = [DicomStudy.study_uid, DicomSeries.series_uid, DicomInstance.sop_instance_uid]
    # Rejected (IOCM) instances, and series and studies left without any, are never found.
    stmt = stmt.where(DicomStudy.rejected_at.is_(None))
    if query.level != "study":
        stmt = stmt.where(DicomSeries.rejected_at.is_(None))
    if query.level == "instance":
        stmt = stmt.where(DicomInstance.rejected_at.is_(None))
    if study_uid is not None:
        stmt = stmt.where(DicomStudy.study_uid == study_uid)
    if series_uid is not None:
        stmt = stmt.where(DicomSeries.series_uid == series_uid)
    for attr, value in query.filters:
        condition = _condition(attr, value, query.fuzzy, catalog.dialect.name)
        if condition is not None:
            stmt = stmt.where(condition)
    stmt = stmt.order_by(*order).limit(query.limit).offset(query.offset)
    with Session(catalog) as session:
        rows = session.execute(stmt).all()
        # The computed attributes, for this page's studies and series only (computed in the
        # search itself, they would be for every match before the sort).
        study_at, series_at, _ = _UIDS[query.level]
        studies = sorted({row[study_at] for row in rows})
        series = sorted({row[series_at] for row in rows}) if series_at is not None else []
        visible_series, visible = DicomSeries.rejected_at.is_(None), DicomInstance.rejected_at.is_(None)
        counts = Counts(
            {},
            _grouped(session, DicomInstance.study_uid, studies, visible),
            _grouped(session, DicomInstance.series_uid, series, visible),
            {},
        )
        if studies:  # a study's series and their modalities, in one statement
            for uid, modality, n in session.execute(
                select(DicomSeries.study_uid, DicomSeries.modality, func.count())
                .where(DicomSeries.study_uid.in_(studies), visible_series)
                .group_by(DicomSeries.study_uid, DicomSeries.modality)
            ):
                counts.study_series[uid] = counts.study_series.get(uid, 0) + n
                if modality:
                    counts.modalities.setdefault(uid, set()).add(modality)
    return [_row_json(query.level, row, counts, base_url) for row in rows]


@dataclass
class Counts:
    study_series: dict[str, int]
    study_instances: dict[str, int]
    series_instances: dict[str, int]
    modalities: dict[str, set[str]]


def _grouped(session: Session, key: Any, values: list[str], condition: Any) -> dict[str, int]:
    """Rows per value of ``key`` among ``values`` that meet ``condition``."""
    if not values:
        return {}
    stmt = select(key, func.count()).where(key.in_(values), condition).group_by(key)
    return {k: v for k, v in session.execute(stmt)}


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": value}]}
    if vr == "IS":
        if isinstance(value, int):
            return {"vr": vr, "Value": [value]}
        text = value.strip()
        number = integer_string(text)
        return {"vr": vr} if number is None else {"vr": vr, "Value": [number]}
    return {"vr": vr, "Value": value if isinstance(value, list) else [value]}


# Per level: the indexed columns selected, and in tag order what each returned attribute is:
# (tag, VR, position of its column in a result row or None when computed, keyword).
_COLUMNS = {
    level: [a.column for a in attributes if a.column is not None] for level, attributes in LEVELS.items()
}


def _position(columns: list[Any], column: Any) -> int | None:
    """Where ``column`` is in ``columns`` (by identity: == on a column builds SQL)."""
    return next((i for i, c in enumerate(columns) if c is column), None)


_PLANS = {
    level: sorted(
        [
            (a.tag, a.vr, None if a.column is None else _position(_COLUMNS[level], a.column), a.keyword)
            for a in attributes
        ]
        + [("00081190", "UR", None, "RetrieveURL")]
    )
    for level, attributes in LEVELS.items()
}
# Per level: where the study, series and instance UIDs are in a result row.
_UIDS = {
    level: tuple(
        _position(columns, c)
        for c in (DicomStudy.study_uid, DicomSeries.series_uid, DicomInstance.sop_instance_uid)
    )
    for level, columns in _COLUMNS.items()
}


def _row_json(level: str, row: Any, counts: Counts, base_url: str) -> dict[str, Any]:
    study_at, series_at, instance_at = _UIDS[level]
    study = row[study_at]
    series = row[series_at] if series_at is not None else None
    url = f"{base_url}/studies/{study}"
    if series is not None:
        url += f"/series/{series}"
    if instance_at is not None:
        url += f"/instances/{row[instance_at]}"
    computed = {
        "ModalitiesInStudy": sorted(counts.modalities.get(study, ())),
        "NumberOfStudyRelatedSeries": counts.study_series.get(study, 0),
        "NumberOfStudyRelatedInstances": counts.study_instances.get(study, 0),
        "NumberOfSeriesRelatedInstances": counts.series_instances.get(series, 0)
        if series is not None
        else None,
        "RetrieveURL": url,
    }
    return {
        tag: _element(vr, computed[key] if position is None else row[position])
        for tag, vr, position, key in _PLANS[level]
    }
