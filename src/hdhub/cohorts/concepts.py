"""Concept sets resolved against the loaded vocabulary: which concept ids each one matches.

An item adds its concept, its descendants (``concept_ancestor``) with ``descendants``, and
with ``mapped`` the source concepts that 'Maps to' it (``concept_relationship``), which
are matched against the domain's ``*_source_concept_id``. ``exclude`` items remove the same
expansion. Included concept sets add their items. Resolution happens once, before
compiling, in three queries for the whole definition, so the compiled expression carries
plain id lists and any engine runs it; it is also where unknown concepts are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hdhub.cohorts.definition import CohortDefinition, ConceptItem
from hdhub.errors import ValidationError

MAX_EXPANDED = 200_000  # concept ids one set may expand to (every RxNorm drug is ~150,000)


@dataclass(frozen=True)
class ResolvedSet:
    standard: frozenset[int]  # matched against the domain's concept column
    source: frozenset[int]  # matched against its source concept column (mapped items)


def flatten(definition: CohortDefinition, name: str) -> list[ConceptItem]:
    """The items of a set and of every set it includes (cycles are refused when parsing)."""
    seen: set[str] = set()
    items: list[ConceptItem] = []
    stack = [name]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        cs = definition.concept_sets[current]
        items.extend(cs.items)
        stack.extend(cs.include)
    return items


def resolve_concept_sets(con: Any, definition: CohortDefinition) -> dict[str, ResolvedSet]:
    """Every concept set of ``definition`` as id sets; ValidationError for unknown concepts."""
    flat = {name: flatten(definition, name) for name in definition.concept_sets}
    ids = {i.concept_id for items in flat.values() for i in items}
    known = _known(con, ids)
    for name, items in flat.items():
        unknown = sorted({i.concept_id for i in items} - known)
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (
                f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            )
            raise ValidationError(
                f"concept set {name!r}: concept {shown} is not in the loaded vocabulary "
                "(load it with `hdhub vocab load`)"
            )
    descendants = _descendants(con, {i.concept_id for items in flat.values() for i in items if i.descendants})
    mapped_from = _mapped_from(
        con,
        {d for items in flat.values() for i in items if i.mapped for d in _expand(i, descendants)},
    )
    resolved = {}
    for name, items in flat.items():
        std_in, std_out, src_in, src_out = set(), set(), set(), set()
        for item in items:
            expanded = _expand(item, descendants)
            (std_out if item.exclude else std_in).update(expanded)
            if item.mapped:
                sources = {s for c in expanded for s in mapped_from.get(c, ())}
                (src_out if item.exclude else src_in).update(sources)
        standard, source = frozenset(std_in - std_out), frozenset(src_in - src_out)
        if len(standard) + len(source) > MAX_EXPANDED:
            raise ValidationError(
                f"concept set {name!r} expands to {len(standard) + len(source):,} concepts: "
                f"the limit is {MAX_EXPANDED:,}; choose narrower ancestors"
            )
        resolved[name] = ResolvedSet(standard, source)
    return resolved


def _expand(item: ConceptItem, descendants: dict[int, set[int]]) -> set[int]:
    return {item.concept_id} | (descendants.get(item.concept_id, set()) if item.descendants else set())


def _query(con: Any, sql: str, ids: set[int]) -> list[tuple[int, ...]]:
    """Rows of ``sql`` (one ``?``: the id list) on the warehouse's DuckDB connection."""
    if not ids:
        return []
    return con.con.execute(sql, [sorted(ids)]).fetchall()


def _known(con: Any, ids: set[int]) -> set[int]:
    rows = _query(con, "SELECT concept_id FROM concept WHERE concept_id IN (SELECT unnest(?))", ids)
    return {r[0] for r in rows}


def _descendants(con: Any, ancestors: set[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for a, d in _query(
        con,
        "SELECT ancestor_concept_id, descendant_concept_id FROM concept_ancestor "
        "WHERE ancestor_concept_id IN (SELECT unnest(?))",
        ancestors,
    ):
        out.setdefault(a, set()).add(d)
    return out


def _mapped_from(con: Any, targets: set[int]) -> dict[int, set[int]]:
    """target standard concept -> source concepts that 'Maps to' it (valid relationships)."""
    out: dict[int, set[int]] = {}
    for t, src in _query(
        con,
        "SELECT concept_id_2, concept_id_1 FROM concept_relationship "
        "WHERE concept_id_2 IN (SELECT unnest(?)) AND relationship_id = 'Maps to' "
        "AND invalid_reason IS NULL AND concept_id_1 <> concept_id_2",
        targets,
    ):
        out.setdefault(t, set()).add(src)
    return out


# --- finding concepts: the cohort explorer's search -----------------------------------------

SEARCH_LIMIT = 25
MAX_SEARCH_LIMIT = 100
MAX_QUERY_LENGTH = 200
# The definition's domains as the vocabulary's domain_id (death and note events carry no
# concept of their own domain: their search is not narrowed).
OMOP_DOMAINS = {
    "condition": "Condition",
    "drug": "Drug",
    "measurement": "Measurement",
    "procedure": "Procedure",
    "observation": "Observation",
    "visit": "Visit",
    "device": "Device",
    "death": None,
    "note": None,
}
_COLUMNS = (
    "concept_id",
    "concept_name",
    "domain_id",
    "vocabulary_id",
    "concept_class_id",
    "standard_concept",
    "concept_code",
    "invalid_reason",
)
_SELECT = (
    "SELECT concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, standard_concept, "
    "concept_code, invalid_reason FROM concept "
)
_MATCH = (
    "WHERE (concept_id = $id OR lower(concept_code) = $q OR starts_with(lower(concept_code), $q) "
    "OR contains(lower(concept_name), $q)) AND ($domain IS NULL OR domain_id = $domain) "
)
_RANK = (
    "ORDER BY (concept_id = $id OR lower(concept_code) = $q) DESC, "
    "CASE standard_concept WHEN 'S' THEN 0 WHEN 'C' THEN 1 ELSE 2 END, invalid_reason IS NOT NULL, "
    "starts_with(lower(concept_name), $q) DESC, length(concept_name), concept_id LIMIT $limit"
)


def search_concepts(
    con: Any, query: str, *, domain: str | None = None, limit: int = SEARCH_LIMIT
) -> list[dict[str, Any]]:
    """Concepts of the loaded vocabulary whose id or code is ``query``, whose code starts with
    it or whose name contains it (case-insensitive, no wildcards), at most ``limit``: exact id
    or code first, then standard concepts, classification concepts, the others; valid before
    invalid; then names starting with the query, shorter names. A non-standard concept lists
    the standard concepts it 'Maps to' (``maps_to``). ValidationError for a query of fewer
    than 2 characters (a concept id may be shorter) or too long, an unknown domain, a limit
    outside 1-100."""
    q = query.strip()
    if len(q) < 2 and not (q.isascii() and q.isdecimal()):
        raise ValidationError("search: type at least 2 characters (or a concept id)")
    if len(q) > MAX_QUERY_LENGTH:
        raise ValidationError(f"search: at most {MAX_QUERY_LENGTH} characters")
    if domain is not None and domain not in OMOP_DOMAINS:
        raise ValidationError(f"search: unknown domain {domain!r} (one of {', '.join(OMOP_DOMAINS)})")
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ValidationError(f"search: the limit is between 1 and {MAX_SEARCH_LIMIT}")
    params = {
        "id": int(q) if q.isascii() and q.isdecimal() and len(q) <= 10 else -1,
        "q": q.lower(),
        "domain": OMOP_DOMAINS[domain] if domain else None,
        "limit": limit,
    }
    rows = [
        dict(zip(_COLUMNS, r, strict=True))
        for r in con.con.execute(_SELECT + _MATCH + _RANK, params).fetchall()
    ]
    targets = _maps_to(con, {r["concept_id"] for r in rows if r["standard_concept"] != "S"})
    for r in rows:
        r["maps_to"] = targets.get(r["concept_id"], [])
    return rows


def describe_concepts(con: Any, ids: set[int]) -> dict[int, dict[str, Any]]:
    """The vocabulary's row of each of ``ids`` it holds (ids it does not hold are left out)."""
    rows = _query(con, _SELECT + "WHERE concept_id IN (SELECT unnest(?))", ids)
    return {r[0]: dict(zip(_COLUMNS, r, strict=True)) for r in rows}


def _maps_to(con: Any, sources: set[int]) -> dict[int, list[dict[str, Any]]]:
    """source concept -> the standard concepts it 'Maps to' (id and name; valid relationships)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for src, target, name in _query(
        con,
        "SELECT r.concept_id_1, c.concept_id, c.concept_name FROM concept_relationship r "
        "JOIN concept c ON c.concept_id = r.concept_id_2 "
        "WHERE r.concept_id_1 IN (SELECT unnest(?)) AND r.relationship_id = 'Maps to' "
        "AND r.invalid_reason IS NULL AND r.concept_id_1 <> r.concept_id_2 ORDER BY c.concept_id",
        sources,
    ):
        out.setdefault(src, []).append({"concept_id": target, "concept_name": name})
    return out
