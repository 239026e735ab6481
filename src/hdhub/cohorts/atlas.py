"""Import OHDSI ATLAS (circe) cohort-definition JSON into the hdhub format.

The supported subset maps one to one; anything else is *named*, never dropped: the import
fails with the list of every construct it cannot carry (``UnsupportedAtlas``), so a
definition never silently means something else. Supported:

- ConceptSets (items with includeDescendants, includeMapped, isExcluded);
- PrimaryCriteria: a list of ConditionOccurrence, DrugExposure, Measurement,
  ProcedureOccurrence, Observation, VisitOccurrence, DeviceExposure, Death criteria with
  CodesetId, First, OccurrenceStartDate, and for measurements and observations
  ValueAsNumber, Unit and (measurements) Abnormal; ObservationWindow; PrimaryCriteriaLimit
  First or All;
- AdditionalCriteria (as a first inclusion rule) when the limits make it equivalent;
- InclusionRules: groups ALL / ANY / AT_LEAST / AT_MOST with CriteriaList (StartWindow,
  RestrictVisit, Occurrence exactly / at most / at least), DemographicCriteriaList (Age,
  Gender) and nested Groups;
- EndStrategy: none (end of observation), DateOffset, CustomEra (drug era, no
  DaysSupplyOverride).

A field of the wrong JSON type (a list where an object belongs, a string for a number), a
non-finite number or a date outside 0001-01-01 to 9999-12-31 fails the import with
``InvalidAtlas`` naming the field by its ATLAS path (``ConceptSets[0].name``).

Strict inequalities on integers (age, dates) become inclusive bounds (``gt 17`` → ``min 18``);
on measured values, exclusive bounds (``min_exclusive``). "Not between" (``!bt``) is named.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from hdhub.cohorts.definition import MAX_DEPTH, CohortDefinition, parse_definition
from hdhub.errors import ValidationError

DOMAINS = {
    "ConditionOccurrence": "condition",
    "DrugExposure": "drug",
    "Measurement": "measurement",
    "ProcedureOccurrence": "procedure",
    "Observation": "observation",
    "VisitOccurrence": "visit",
    "DeviceExposure": "device",
    "Death": "death",
}
GENDERS = {8532: "female", 8507: "male"}
_OCCURRENCE = {0: "exactly", 1: "at_most", 2: "at_least"}
_COMMON = {"CodesetId", "First", "OccurrenceStartDate"}
_VALUED = {"ValueAsNumber", "Unit"}
_ALLOWED = {
    "measurement": _COMMON | _VALUED | {"Abnormal"},
    "observation": _COMMON | _VALUED,
}


class UnsupportedAtlas(ValidationError):
    """An ATLAS definition using constructs the hdhub format does not carry."""

    code = "unsupported_atlas"


class InvalidAtlas(ValidationError):
    """An ATLAS definition that is not well formed: a field of the wrong JSON type or out of range."""

    code = "invalid_atlas"


def is_atlas(data: Any) -> bool:
    return isinstance(data, dict) and ("PrimaryCriteria" in data or "ConceptSets" in data)


class _Importer:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.unsupported: list[str] = []
        self.set_names: dict[int | None, str] = {}

    def nope(self, what: str) -> None:
        if what not in self.unsupported:
            self.unsupported.append(what)

    # concept sets -------------------------------------------------------------------------

    def concept_sets(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, path, cs in _objects(self.data, "ConceptSets", ""):
            set_id = _int(cs, "id", path)
            name = _slug(_str(cs, "name", path) or f"set-{set_id}", taken=set(out))
            self.set_names[set_id] = name
            items = []
            expression = _object(cs, "expression", path)
            for _, at, item in _objects(expression, "items", f"{path}.expression"):
                concept = _object(item, "concept", at)
                concept_id = concept.get("CONCEPT_ID", concept.get("conceptId"))
                if not isinstance(concept_id, int) or isinstance(concept_id, bool):
                    self.nope(f"concept set {name!r}: an item without a CONCEPT_ID")
                    continue
                items.append(
                    {
                        "concept_id": concept_id,
                        "descendants": _flag(item, "includeDescendants", at),
                        "mapped": _flag(item, "includeMapped", at),
                        "exclude": _flag(item, "isExcluded", at),
                    }
                )
            out[name] = {"items": items}
        return out

    def codeset(self, where: str, codeset_id: int | None) -> str | None:
        if codeset_id is None:
            return None
        if codeset_id not in self.set_names:
            self.nope(f"{where}: CodesetId {codeset_id} names no concept set")
            return None
        return self.set_names[codeset_id]

    # criteria ---------------------------------------------------------------------------

    def event(self, criteria: Any, where: str, path: str) -> dict[str, Any] | None:
        if not isinstance(criteria, dict) or len(criteria) != 1:
            self.nope(f"{where}: a criteria object with one domain")
            return None
        kind = next(iter(criteria))
        domain = DOMAINS.get(kind)
        if domain is None:
            self.nope(f"{where}: {kind} criteria")
            return None
        body, at = _object(criteria, kind, path), f"{path}.{kind}"
        for key in sorted(set(body) - _ALLOWED.get(domain, _COMMON)):
            if body[key] not in (None, [], False, {}):
                self.nope(f"{where}: {kind}.{key}")
        event: dict[str, Any] = {"domain": domain}
        concept_set = self.codeset(where, _int(body, "CodesetId", at))
        if concept_set:
            event["concept_set"] = concept_set
        if _flag(body, "First", at):
            event["first_occurrence"] = True
        dates = _object(body, "OccurrenceStartDate", at)
        if dates:
            event["date_range"] = self.date_range(
                dates, f"{where}: OccurrenceStartDate", f"{at}.OccurrenceStartDate"
            )
        values = _object(body, "ValueAsNumber", at)
        if values:
            event["value"] = self.value_range(values, f"{where}: ValueAsNumber", f"{at}.ValueAsNumber")
        units = [_int(c, "CONCEPT_ID", unit) for _, unit, c in _objects(body, "Unit", at)]
        if units:
            event["units"] = units
        if _flag(body, "Abnormal", at):
            event["abnormal"] = True
        return event

    def date_range(self, r: dict[str, Any], where: str, path: str) -> dict[str, Any]:
        op, v, e = _str(r, "Op", path), _date(r, "Value", path), _date(r, "Extent", path)
        day = dt.timedelta(days=1)
        forms = {
            "lt": lambda: {"end": v - day}, "lte": lambda: {"end": v},
            "gt": lambda: {"start": v + day}, "gte": lambda: {"start": v},
            "eq": lambda: {"start": v, "end": v}, "bt": lambda: {"start": v, "end": e},
        }  # fmt: skip
        if op not in forms or v is None or (op == "bt" and e is None):
            self.nope(f"{where}: operator {op!r}")
            return {}
        try:
            return {k: d.isoformat() for k, d in forms[op]().items()}
        except OverflowError:
            raise InvalidAtlas(
                f"invalid ATLAS definition: {path}.Value: {op} {v.isoformat()} leaves no date "
                f"between {dt.date.min} and {dt.date.max}"
            ) from None

    def value_range(self, r: dict[str, Any], where: str, path: str) -> dict[str, Any]:
        op, value, extent = _str(r, "Op", path), _number(r, "Value", path), _number(r, "Extent", path)
        forms = {
            "lt": {"max": value, "max_exclusive": True}, "lte": {"max": value},
            "gt": {"min": value, "min_exclusive": True}, "gte": {"min": value},
            "eq": {"min": value, "max": value}, "bt": {"min": value, "max": extent},
        }  # fmt: skip
        if op not in forms or value is None or (op == "bt" and extent is None):
            self.nope(f"{where}: operator {op!r}")
            return {}
        return forms[op]

    def age(self, r: dict[str, Any], where: str, path: str) -> dict[str, Any]:
        op, value, extent = _str(r, "Op", path), _int(r, "Value", path), _int(r, "Extent", path)
        forms = {
            "lt": {"max": (value or 0) - 1}, "lte": {"max": value}, "gt": {"min": (value or 0) + 1},
            "gte": {"min": value}, "eq": {"min": value, "max": value}, "bt": {"min": value, "max": extent},
        }  # fmt: skip
        if op not in forms or value is None or (op == "bt" and extent is None):
            self.nope(f"{where}: Age operator {op!r}")
            return {}
        return forms[op]

    def demographic(self, d: dict[str, Any], where: str, path: str) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for key in sorted(set(d) - {"Age", "Gender"}):
            if d[key] not in (None, [], {}):
                self.nope(f"{where}: demographic {key}")
        age = _object(d, "Age", path)
        if age:
            out["age"] = self.age(age, where, f"{path}.Age")
        genders = [_int(c, "CONCEPT_ID", at) for _, at, c in _objects(d, "Gender", path)]
        if genders:
            sexes = []
            for concept_id in genders:
                sex = GENDERS.get(concept_id)
                if sex is None:
                    self.nope(f"{where}: gender concept {concept_id}")
                else:
                    sexes.append(sex)
            out["sex"] = sexes
        return {"demographics": out} if out else None

    def window(self, w: dict[str, Any], where: str, path: str) -> dict[str, Any] | None:
        if not w:
            return None
        if _flag(w, "UseIndexEnd", path) or _flag(w, "UseEventEnd", path):
            self.nope(f"{where}: a window on the index's or the event's end date")

        def bound(key: str, unbounded: str) -> dict[str, Any]:
            b, at = _object(w, key, path), f"{path}.{key}"
            days = _int(b, "Days", at)
            if days is None:
                return {"direction": unbounded}
            return {"days": days, "direction": "before" if _int(b, "Coeff", at, -1) < 0 else "after"}

        return {"start": bound("Start", "before"), "end": bound("End", "after")}

    def group(self, g: dict[str, Any], where: str, path: str, depth: int = 1) -> dict[str, Any]:
        if depth > MAX_DEPTH:  # stop here: nesting as deep as the JSON allows would exhaust the stack
            self.nope(f"{where}: groups nested deeper than {MAX_DEPTH} levels")
            return {"type": "all", "items": []}
        kind = _str(g, "Type", path, "ALL").upper()
        types = {"ALL": "all", "ANY": "any", "AT_LEAST": "at_least", "AT_MOST": "at_most"}
        if kind not in types:
            self.nope(f"{where}: group type {kind}")
            kind = "ALL"
        items: list[dict[str, Any]] = []
        for i, at_path, c in _objects(g, "CriteriaList", path):
            at = f"{where}, criterion {i + 1}"
            event = self.event(c.get("Criteria"), at, f"{at_path}.Criteria")
            if event is None:
                continue
            if c.get("EndWindow"):
                self.nope(f"{at}: EndWindow")
            if c.get("IgnoreObservationPeriod"):
                self.nope(f"{at}: IgnoreObservationPeriod")
            occ, occ_path = _object(c, "Occurrence", at_path), f"{at_path}.Occurrence"
            if _flag(occ, "IsDistinct", occ_path):
                self.nope(f"{at}: distinct occurrence counts")
            item: dict[str, Any] = {"event": event}
            window = self.window(_object(c, "StartWindow", at_path), at, f"{at_path}.StartWindow")
            if window:
                item["window"] = window
            if _flag(c, "RestrictVisit", at_path):
                item["same_visit"] = True
            occ_type, count = _OCCURRENCE.get(_int(occ, "Type", occ_path, 2)), _int(occ, "Count", occ_path, 1)
            if occ_type is None:
                self.nope(f"{at}: occurrence type {occ['Type']}")
                continue
            if occ_type == "at_least" and count == 0:
                continue  # "at least 0" is always true: circe keeps it, it changes nothing
            if (occ_type, count) != ("at_least", 1):
                item["occurrences"] = {"type": occ_type, "count": count}
            items.append(item)
        for i, at_path, d in _objects(g, "DemographicCriteriaList", path):
            demo = self.demographic(d, f"{where}, demographic criterion {i + 1}", at_path)
            if demo:
                items.append(demo)
        for i, at_path, sub in _objects(g, "Groups", path):
            items.append(self.group(sub, f"{where}, group {i + 1}", at_path, depth + 1))
        out: dict[str, Any] = {"type": types[kind], "items": items}
        if kind in ("AT_LEAST", "AT_MOST"):
            out["count"] = _int(g, "Count", path, 1)
        return out

    # the whole definition -----------------------------------------------------------------

    def convert(self, name: str) -> dict[str, Any]:
        d = self.data
        out: dict[str, Any] = {"name": name, "concept_sets": self.concept_sets()}
        primary = _object(d, "PrimaryCriteria", "")
        events = []
        for i, c in enumerate(_list(primary, "CriteriaList", "PrimaryCriteria")):
            event = self.event(c, f"entry event {i + 1}", f"PrimaryCriteria.CriteriaList[{i}]")
            if event:
                events.append(event)
        primary_limit = _object(primary, "PrimaryCriteriaLimit", "PrimaryCriteria")
        limit = _str(primary_limit, "Type", "PrimaryCriteria.PrimaryCriteriaLimit", "First")
        if limit not in ("First", "All"):
            self.nope(f"PrimaryCriteriaLimit {limit}")
        out["entry"] = {"events": events, "occurrence": "first" if limit == "First" else "all"}
        window = _object(primary, "ObservationWindow", "PrimaryCriteria")
        out["observation"] = {
            "prior_days": _int(window, "PriorDays", "PrimaryCriteria.ObservationWindow", 0),
            "post_days": _int(window, "PostDays", "PrimaryCriteria.ObservationWindow", 0),
        }
        rules = []
        qualified = _str(_object(d, "QualifiedLimit", ""), "Type", "QualifiedLimit", "First")
        expression = _str(_object(d, "ExpressionLimit", ""), "Type", "ExpressionLimit", "First")
        if limit == "All" and (qualified != "All" or expression != "All"):
            self.nope("QualifiedLimit or ExpressionLimit First after PrimaryCriteriaLimit All")
        additional = _object(d, "AdditionalCriteria", "")
        if additional:
            rules.append(
                {
                    "name": "additional criteria",
                    "criteria": self.group(additional, "additional criteria", "AdditionalCriteria"),
                }
            )
        for i, path, rule in _objects(d, "InclusionRules", ""):
            rule_name = _str(rule, "name", path) or f"rule {i + 1}"
            criteria = _object(rule, "expression", path)
            entry: dict[str, Any] = {
                "name": rule_name,
                "criteria": self.group(criteria, f"inclusion rule {rule_name!r}", f"{path}.expression"),
            }
            description = _str(rule, "description", path)
            if description:
                entry["description"] = description
            rules.append(entry)
        out["inclusion_rules"] = rules
        out["exit"] = self.exit(_object(d, "EndStrategy", ""))
        if d.get("CensoringCriteria"):
            self.nope("CensoringCriteria")
        censor = _object(d, "CensorWindow", "")
        if censor.get("StartDate") or censor.get("EndDate"):
            self.nope("CensorWindow")
        if _int(_object(d, "CollapseSettings", ""), "EraPad", "CollapseSettings", 0) > 0:
            self.nope("CollapseSettings.EraPad above 0")
        return out

    def exit(self, strategy: dict[str, Any]) -> dict[str, Any]:
        if not strategy:
            return {"type": "end_of_observation"}
        if "DateOffset" in strategy:
            o, path = _object(strategy, "DateOffset", "EndStrategy"), "EndStrategy.DateOffset"
            field = _str(o, "DateField", path, "StartDate")
            if field not in ("StartDate", "EndDate"):
                self.nope(f"EndStrategy.DateOffset.DateField {field}")
            return {
                "type": "fixed_offset",
                "days": _int(o, "Offset", path, 0),
                "from": "start" if field == "StartDate" else "end",
            }
        if "CustomEra" in strategy:
            e, path = _object(strategy, "CustomEra", "EndStrategy"), "EndStrategy.CustomEra"
            if e.get("DaysSupplyOverride") is not None:
                self.nope("EndStrategy.CustomEra.DaysSupplyOverride")
            concept_set = self.codeset("exit", _int(e, "DrugCodesetId", path))
            if concept_set is None:
                self.nope("EndStrategy.CustomEra without a DrugCodesetId")
                return {"type": "end_of_observation"}
            return {
                "type": "drug_era",
                "concept_set": concept_set,
                "gap_days": _int(e, "GapDays", path, 0),
                "offset_days": _int(e, "Offset", path, 0),
            }
        self.nope(f"EndStrategy {', '.join(strategy)}")
        return {"type": "end_of_observation"}


# Typed reads: each takes the parent object, the key and the parent's ATLAS path, and answers a
# field of the wrong JSON type with InvalidAtlas naming it. A null field reads as an absent one.

_T = TypeVar("_T")
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}


def _invalid(path: str, expected: str, value: Any) -> InvalidAtlas:
    found = _JSON_TYPES.get(type(value), "a number")
    return InvalidAtlas(f"invalid ATLAS definition: {path} must be {expected}, not {found}")


def _path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _field(parent: dict[str, Any], key: str, path: str) -> tuple[Any, str]:
    return parent.get(key), _path(path, key)


def _object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value, at = _field(parent, key, path)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(at, "an object", value)
    return value


def _list(parent: dict[str, Any], key: str, path: str) -> list[Any]:
    value, at = _field(parent, key, path)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(at, "a list", value)
    return value


def _objects(parent: dict[str, Any], key: str, path: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, path, object) of each item of a list of objects."""
    at = _path(path, key)
    for i, item in enumerate(_list(parent, key, path)):
        if not isinstance(item, dict):
            raise _invalid(f"{at}[{i}]", "an object", item)
        yield i, f"{at}[{i}]", item


def _str(parent: dict[str, Any], key: str, path: str, default: _T = None) -> str | _T:  # type: ignore[assignment]
    value, at = _field(parent, key, path)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _invalid(at, "a string", value)
    return value


def _int(parent: dict[str, Any], key: str, path: str, default: _T = None) -> int | _T:  # type: ignore[assignment]
    value, at = _field(parent, key, path)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(at, "an integer", value)
    return value


def _number(parent: dict[str, Any], key: str, path: str) -> float | None:
    value, at = _field(parent, key, path)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _invalid(at, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidAtlas(f"invalid ATLAS definition: {at} must be a finite number, not {value}")
    return value


def _flag(parent: dict[str, Any], key: str, path: str) -> bool:
    value, at = _field(parent, key, path)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(at, "true or false", value)
    return value


def _date(parent: dict[str, Any], key: str, path: str) -> dt.date | None:
    value, at = _field(parent, key, path)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(at, "a date 'YYYY-MM-DD'", value)
    try:
        if _DATE.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidAtlas(f"invalid ATLAS definition: {at} must be a date 'YYYY-MM-DD', not {value[:40]!r}")


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:56] or "set"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def import_atlas(data: dict[str, Any], name: str = "") -> CohortDefinition:
    """The hdhub definition of an ATLAS cohort expression; UnsupportedAtlas names what it lacks."""
    if not is_atlas(data):
        raise ValidationError("not an ATLAS cohort definition (no PrimaryCriteria)")
    importer = _Importer(data)
    converted = importer.convert(name)
    if importer.unsupported:
        raise UnsupportedAtlas(
            "this ATLAS definition uses what hdhub cannot carry: " + "; ".join(importer.unsupported)
        )
    return parse_definition(converted)
