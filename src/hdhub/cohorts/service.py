"""Cohort operations for the CLI and the API: count with disclosure control, save and read
versioned definitions, materialise a cohort, the opposition registry.

Every research count leaves out the persons in the opposition registry. Callers entitled
to exact counts (``cohorts:count-exact``) see the true numbers; everyone else sees them
through :class:`~hdhub.cohorts.disclosure.Obfuscator`, and may ask the same question (same
logic, whatever its name) at most ``cohorts.max_repeats`` times per window.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.db import is_row_id
from hdhub.catalog.models import CohortCountLog, CohortDefinitionRecord, ResearchOpposition, aware
from hdhub.cohorts.definition import CohortDefinition
from hdhub.cohorts.disclosure import Obfuscator
from hdhub.cohorts.run import CohortCounts, compile_on, count_cohort, execute
from hdhub.errors import NotFound, RateLimited
from hdhub.security.authz import decide
from hdhub.security.principal import Principal


def canonical(definition: CohortDefinition) -> bytes:
    return orjson.dumps(
        definition.model_dump(mode="json", by_alias=True, exclude_none=True), option=orjson.OPT_SORT_KEYS
    )


def fingerprint(definition: CohortDefinition) -> str:
    """SHA-256 of the definition's logic: names and descriptions left out."""
    data = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("name", None)
    data.pop("description", None)
    for rule in data.get("inclusion_rules", []):
        rule.pop("name", None)
        rule.pop("description", None)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- the opposition registry -------------------------------------------------------------


def opposed_person_keys(catalog: Any) -> list[str]:
    with Session(catalog) as s:
        rows = s.scalars(
            select(ResearchOpposition.person_key).where(ResearchOpposition.withdrawn_at.is_(None)).distinct()
        )
        return list(rows)


def opposed_person_ids(catalog: Any, con: Any) -> list[int]:
    """Warehouse person_ids of the patients who object to research use (now)."""
    keys = opposed_person_keys(catalog)
    if not keys:
        return []
    person = con.table("person")
    ids: list[int] = []
    for i in range(0, len(keys), 10_000):
        chunk = keys[i : i + 10_000]
        rows = person.filter(person.person_source_value.isin(chunk)).select("person_id").to_pyarrow()
        ids.extend(rows.column(0).to_pylist())
    return ids


def record_opposition(catalog: Any, person_key: str, recorded_by: str) -> int:
    """Record an objection (idempotent while one is active); returns its id."""
    with Session(catalog) as s, s.begin():
        active = s.scalar(
            select(ResearchOpposition.id).where(
                ResearchOpposition.person_key == person_key, ResearchOpposition.withdrawn_at.is_(None)
            )
        )
        if active is not None:
            return active
        row = ResearchOpposition(person_key=person_key, recorded_by=recorded_by)
        s.add(row)
        s.flush()
        return row.id


def withdraw_opposition(catalog: Any, person_key: str) -> int:
    """Withdraw the active objections of a person; returns how many were withdrawn."""
    now = datetime.now(UTC)
    with Session(catalog) as s, s.begin():
        rows = s.scalars(
            select(ResearchOpposition).where(
                ResearchOpposition.person_key == person_key, ResearchOpposition.withdrawn_at.is_(None)
            )
        ).all()
        for row in rows:
            row.withdrawn_at = now
        return len(rows)


def persons_with_identifier(identities: Any, identifier: str) -> list[str]:
    """Warehouse person keys holding ``system|value`` (through the identity store)."""
    keys = sorted({found["person_key"] for found in identities.lookup(identifier)})
    if not keys:
        raise NotFound("no patient holds this identifier")
    return keys


# --- counts ------------------------------------------------------------------------------


def count_for(
    hub: Any, con: Any, principal: Principal, definition: CohortDefinition, *, breakdowns: bool = True
) -> dict[str, Any]:
    """What ``principal`` may see of the definition's counts on warehouse ``con``."""
    exact = decide(principal, "cohorts:count-exact").allowed
    fp = fingerprint(definition)
    settings = hub.settings.cohorts
    if not exact:
        _check_rate(hub.catalog, principal.name, fp, settings.max_repeats, settings.repeat_window_hours)
    counts = count_cohort(
        con,
        definition,
        opposed_person_ids(hub.catalog, con),
        breakdowns=breakdowns,
        max_seconds=settings.max_seconds,
    )
    if not exact:
        with Session(hub.catalog) as s, s.begin():
            s.add(CohortCountLog(actor=principal.name, fingerprint=fp))
    obf = None if exact else Obfuscator(hub.keys.pseudonym, settings.threshold, settings.noise_sigma)
    return shown(counts, obf, fp)


def project_count(hub: Any, con: Any, principal: Principal, slug: str) -> dict[str, Any]:
    """Exact counts of an approved project's cohort, for its members, with the number of
    persons its opposition exclusions removed (the project's report)."""
    from hdhub.errors import Conflict, Forbidden
    from hdhub.governance.projects import get_project, members_of

    with Session(hub.catalog) as s:
        project = get_project(s, slug)
        members = members_of(s, project)
    if principal.name not in members:
        raise Forbidden(f"{principal.name}: not a member of project {slug!r}")
    expired = project.expires_at is not None and aware(project.expires_at) < datetime.now(UTC)
    if project.status not in ("approved", "active") or expired:
        raise Conflict(
            f"project {slug!r} is {'expired' if expired else project.status}: no approved perimeter"
        )
    if not project.cohort_name or not project.cohort_owner or project.cohort_version is None:
        raise Conflict(f"project {slug!r} has no cohort in its perimeter")
    row = get_definition(hub.catalog, project.cohort_owner, project.cohort_name, project.cohort_version)
    definition = CohortDefinition.model_validate_json(row.definition)
    limit = hub.settings.cohorts.max_seconds
    counts = count_cohort(con, definition, opposed_person_ids(hub.catalog, con), max_seconds=limit)
    everyone = count_cohort(con, definition, breakdowns=False, max_seconds=limit)
    return {
        "project": slug,
        **shown(counts, None, row.fingerprint),
        "excluded_by_opposition": everyone.persons - counts.persons,
    }


def shown(counts: CohortCounts, obf: Obfuscator | None, fp: str) -> dict[str, Any]:
    def show(n: int, label: str) -> int | str:
        return n if obf is None else obf.show(n, label)

    return {
        "persons": show(counts.persons, "persons"),
        "exact": obf is None,
        "threshold": None if obf is None else obf.threshold,
        "entry": show(counts.entry, "entry"),
        "attrition": [
            {"rule": r.name, "met": show(r.met, "rule_met"), "remaining": show(r.remaining, "rule_remaining")}
            for r in counts.rules
        ],
        "breakdowns": {
            "sex_age": [{**c, "persons": show(c["persons"], "cell")} for c in counts.by_sex_age],
            "site": [{**c, "persons": show(c["persons"], "cell")} for c in counts.by_site],
        },
        "fingerprint": fp,
        "seconds": round(counts.seconds, 3),
    }


def _check_rate(catalog: Any, actor: str, fp: str, max_repeats: int, window_hours: float) -> None:
    since = datetime.now(UTC) - timedelta(hours=window_hours)
    with Session(catalog) as s:
        asked = s.scalar(
            select(func.count())
            .select_from(CohortCountLog)
            .where(
                CohortCountLog.actor == actor, CohortCountLog.fingerprint == fp, CohortCountLog.at >= since
            )
        )
    if asked >= max_repeats:
        raise RateLimited(
            f"this question was already asked {asked} times in the last {window_hours:g} hours "
            f"(the limit is {max_repeats}): repeated counts are noisy and cannot be averaged; "
            "an approved project gives exact counts"
        )


# --- saved definitions -------------------------------------------------------------------


def save_definition(
    catalog: Any, owner: str, name: str, definition: CohortDefinition
) -> CohortDefinitionRecord:
    """A new version of ``owner``'s definition ``name`` (1 for a new name); never overwrites."""
    body = canonical(definition).decode()
    fp = fingerprint(definition)
    with Session(catalog, expire_on_commit=False) as s, s.begin():
        latest = s.scalars(
            select(CohortDefinitionRecord)
            .where(CohortDefinitionRecord.owner == owner, CohortDefinitionRecord.name == name)
            .order_by(CohortDefinitionRecord.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.definition == body:
            return latest  # unchanged: no new version
        row = CohortDefinitionRecord(
            owner=owner,
            name=name,
            version=(latest.version + 1) if latest else 1,
            definition=body,
            fingerprint=fp,
        )
        s.add(row)
        s.flush()
        return row


def list_definitions(catalog: Any, owner: str) -> list[CohortDefinitionRecord]:
    """The owner's definitions, every version, newest first within each name."""
    with Session(catalog) as s:
        return list(
            s.scalars(
                select(CohortDefinitionRecord)
                .where(CohortDefinitionRecord.owner == owner)
                .order_by(CohortDefinitionRecord.name, CohortDefinitionRecord.version.desc())
            )
        )


def get_definition(catalog: Any, owner: str, name: str, version: int | None = None) -> CohortDefinitionRecord:
    if version is not None and not is_row_id(version):
        raise NotFound(f"no saved cohort definition {name!r} version {version}")
    with Session(catalog) as s:
        q = select(CohortDefinitionRecord).where(
            CohortDefinitionRecord.owner == owner, CohortDefinitionRecord.name == name
        )
        q = q.where(CohortDefinitionRecord.version == version) if version is not None else q
        row = s.scalars(q.order_by(CohortDefinitionRecord.version.desc()).limit(1)).first()
    if row is None:
        what = f"{name!r}" + (f" version {version}" if version is not None else "")
        raise NotFound(f"no saved cohort definition {what}")
    return row


def record_summary(row: CohortDefinitionRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "fingerprint": row.fingerprint,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


# --- materialised cohorts ------------------------------------------------------------------


def materialise(con: Any, catalog: Any, definition: CohortDefinition, cohort_definition_id: int) -> int:
    """Write the cohort's rows into OMOP ``cohort`` (replacing that cohort_definition_id's);
    overlapping periods of one person are merged, as ATLAS does. Returns the rows written."""
    from hdhub.cohorts.compiler import merge_intervals

    compiled = compile_on(con, definition, opposed_person_ids(catalog, con))
    merged = merge_intervals(compiled.cohort, "person_id", "cohort_start_date", "cohort_end_date", 0)
    rows = execute(con, compiled, merged)
    db = con.con
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute("DELETE FROM cohort WHERE cohort_definition_id = ?", [cohort_definition_id])
        db.register("_hdhub_cohort_rows", rows)
        db.execute(
            "INSERT INTO cohort (cohort_definition_id, subject_id, cohort_start_date, cohort_end_date) "
            "SELECT ?, person_id, cohort_start_date, cohort_end_date FROM _hdhub_cohort_rows",
            [cohort_definition_id],
        )
        db.unregister("_hdhub_cohort_rows")
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    return rows.num_rows
