"""The researchers' cohort explorer in the browser (``/cohorts``).

A builder form covers the common shape of a definition — one entry event (a domain, concepts
found by code, id or label, with or without descendants, a value range), an optional
inclusion criterion (another domain and concepts, within days before / after the index
date, at least n events or none), age, sex and site at the index date — and fills in the
full JSON definition (``hdhub.cohort/1``), which an "advanced" field lets one edit directly.
The state lives in the form itself: the builder is one GET form (search, add, remove
concepts) whose Count and Save buttons post the same fields; nothing is kept on the server
between requests, and no script is needed.

Counts, saves and loads go through the functions of the JSON API
(``hdhub.api.routes.cohorts``): the same disclosure control (obfuscated figures and the
repeat limit for callers without ``cohorts:count-exact``), the opposition registry left out,
the same audit details. The breakdown charts by sex and by age band are sums of the cells
the API shows (sex by age band), never figures the API would not give.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hdhub.api.charts import Bar, bar_chart
from hdhub.api.deps import get_hub, read_body
from hdhub.api.pages import TEXT, add_texts, forbidden_page, language, render, same_origin, say, signed_in
from hdhub.api.routes.cohorts import count_definition, load_saved, save_named
from hdhub.cohorts.concepts import MAX_QUERY_LENGTH, describe_concepts, resolve_concept_sets, search_concepts
from hdhub.cohorts.definition import (
    FORMAT,
    MAX_CONCEPT_SET_ITEMS,
    MAX_DEFINITION_BYTES,
    NAME_PATTERN,
    CohortDefinition,
    Criterion,
    parse_definition,
)
from hdhub.cohorts.service import fingerprint, list_definitions
from hdhub.errors import HdhubError, ValidationError
from hdhub.security.authz import decide
from hdhub.security.principal import Principal
from hdhub.warehouse.connection import read_only

router = APIRouter(include_in_schema=False)

DOMAINS = ("condition", "drug", "measurement", "procedure", "observation", "visit", "device", "death")
SEXES = ("female", "male", "unknown")
MAX_FIELDS = 4 * MAX_CONCEPT_SET_ITEMS + 100  # two concept sets, each id and its descendants flag
MAX_FORM_BYTES = 3 * MAX_DEFINITION_BYTES + 100_000  # a definition, percent-encoded
MAX_SITES = 200
MAX_CONCEPT_ID = 2**31 - 1  # concept_id is an INTEGER column

add_texts({
    "co_builder": {"fr": "Définition de la cohorte", "en": "Cohort definition"},
    "co_search_legend": {"fr": "Chercher des concepts", "en": "Find concepts"},
    "co_search": {"fr": "Code, identifiant ou libellé", "en": "Code, id or label"},
    "co_search_button": {"fr": "Chercher", "en": "Search"},
    "co_search_domain": {"fr": "Domaine du concept", "en": "Concept domain"},
    "co_any": {"fr": "tous", "en": "any"},
    "co_add_desc": {"fr": "Ajouter avec les descendants", "en": "Add with descendants"},
    "co_results": {"fr": "Concepts trouvés", "en": "Concepts found"},
    "co_no_results": {"fr": "Aucun concept ne correspond.", "en": "No concept matches."},
    "co_id": {"fr": "Identifiant", "en": "Id"},
    "co_code": {"fr": "Code", "en": "Code"},
    "co_vocabulary": {"fr": "Vocabulaire", "en": "Vocabulary"},
    "co_name": {"fr": "Libellé", "en": "Name"},
    "co_domain": {"fr": "Domaine", "en": "Domain"},
    "co_standard": {"fr": "Standard", "en": "Standard"},
    "co_maps_to": {"fr": "Correspond à", "en": "Maps to"},
    "co_add": {"fr": "Ajouter", "en": "Add"},
    "co_add_entry": {"fr": "à l'entrée", "en": "to entry"},
    "co_add_crit": {"fr": "au critère", "en": "to criterion"},
    "co_yes": {"fr": "oui", "en": "yes"},
    "co_no": {"fr": "non", "en": "no"},
    "co_entry": {"fr": "Événement d'entrée (date index)", "en": "Entry event (index date)"},
    "co_occurrence": {"fr": "Événements retenus", "en": "Events kept"},
    "co_first": {"fr": "le premier de chaque patient", "en": "each person's first"},
    "co_all_events": {"fr": "tous", "en": "all of them"},
    "co_concepts": {"fr": "Concepts", "en": "Concepts"},
    "co_any_concept": {
        "fr": "Aucun concept : tout événement du domaine. Cherchez des concepts ci-dessus.",
        "en": "No concept: any event of the domain. Find concepts above.",
    },
    "co_descendants": {"fr": "avec les descendants", "en": "with descendants"},
    "co_remove": {"fr": "Retirer", "en": "Remove"},
    "co_unknown_concept": {"fr": "absent du vocabulaire", "en": "not in the vocabulary"},
    "co_non_standard": {
        "fr": "non standard : les événements sont codés avec des concepts standard",
        "en": "non-standard: events are recorded with standard concepts",
    },
    "co_value_min": {"fr": "Valeur minimale (mesure, observation)",
                     "en": "Minimum value (measurement, observation)"},
    "co_value_max": {"fr": "Valeur maximale (mesure, observation)",
                     "en": "Maximum value (measurement, observation)"},
    "co_criterion": {"fr": "Critère d'inclusion", "en": "Inclusion criterion"},
    "co_crit_domain": {"fr": "Domaine (aucun : pas de critère)", "en": "Domain (none: no criterion)"},
    "co_none": {"fr": "aucun", "en": "none"},
    "co_crit_mode": {"fr": "Le patient a", "en": "The person has"},
    "co_at_least": {"fr": "au moins n événements", "en": "at least n events"},
    "co_no_event": {"fr": "aucun événement", "en": "no event"},
    "co_crit_count": {"fr": "n (au moins)", "en": "n (at least)"},
    "co_days_before": {"fr": "Depuis n jours avant l'index (vide : sans limite)",
                       "en": "From n days before index (empty: unbounded)"},
    "co_days_after": {"fr": "Jusqu'à n jours après l'index (vide : sans limite)",
                      "en": "Until n days after index (empty: unbounded)"},
    "co_rule_name": {"fr": "Nom de la règle", "en": "Rule name"},
    "co_demographics": {"fr": "Patients à la date index", "en": "Persons at the index date"},
    "co_age_min": {"fr": "Âge minimal (ans)", "en": "Minimum age (years)"},
    "co_age_max": {"fr": "Âge maximal (ans)", "en": "Maximum age (years)"},
    "co_sex": {"fr": "Sexe (aucun coché : tous)", "en": "Sex (none ticked: all)"},
    "co_female": {"fr": "femmes", "en": "female"},
    "co_male": {"fr": "hommes", "en": "male"},
    "co_unknown": {"fr": "inconnu", "en": "unknown"},
    "co_sites": {"fr": "Sites (aucun coché : tous)", "en": "Sites (none ticked: all)"},
    "co_prior": {"fr": "Observation continue avant l'index (jours)",
                 "en": "Continuous observation before index (days)"},
    "co_count": {"fr": "Compter", "en": "Count"},
    "co_save": {"fr": "Enregistrer une version", "en": "Save a version"},
    "co_save_name": {"fr": "Nom de la définition", "en": "Definition name"},
    "co_result": {"fr": "Résultat", "en": "Result"},
    "co_persons": {"fr": "Patients dans la cohorte", "en": "Persons in the cohort"},
    "co_entry_persons": {"fr": "Patients ayant un événement d'entrée", "en": "Persons with an entry event"},
    "co_exact": {"fr": "Effectifs exacts.", "en": "Exact counts."},
    "co_obfuscated": {
        "fr": "Effectifs protégés : tout effectif inférieur à {threshold} est affiché « < {threshold} », "
              "les autres portent un léger bruit aléatoire, et une même question ne peut être posée "
              "que quelques fois par jour. Les effectifs exacts s'obtiennent dans un projet approuvé.",
        "en": "Protected counts: any count below {threshold} is shown as \"< {threshold}\", the others "
              "carry a little random noise, and the same question may be asked only a few times a "
              "day. Exact counts come with an approved project.",
    },
    "co_hidden_bars": {
        "fr": "Partie en pointillés : des effectifs masqués (moins de {threshold} chacun).",
        "en": "Dashed part: hidden counts (fewer than {threshold} each).",
    },
    "co_seconds": {"fr": "calculé en {s} s", "en": "computed in {s} s"},
    "co_attrition": {"fr": "Attrition par règle d'inclusion", "en": "Attrition per inclusion rule"},
    "co_met": {"fr": "Patients remplissant la règle", "en": "Persons meeting the rule"},
    "co_remaining": {"fr": "Patients restants", "en": "Persons remaining"},
    "co_by_sex": {"fr": "Patients par sexe", "en": "Persons by sex"},
    "co_by_age": {"fr": "Patients par tranche d'âge à l'index", "en": "Persons by age band at index"},
    "co_by_site": {"fr": "Patients par site", "en": "Persons by site"},
    "co_cells": {"fr": "Patients par sexe et tranche d'âge (tableau)",
                 "en": "Persons by sex and age band (table)"},
    "co_age_band": {"fr": "Tranche d'âge", "en": "Age band"},
    "co_advanced": {"fr": "Définition complète (JSON)", "en": "Full definition (JSON)"},
    "co_json": {"fr": "Définition au format hdhub.cohort/1", "en": "Definition in the hdhub.cohort/1 format"},
    "co_json_help": {
        "fr": "Le constructeur remplit ce champ ; modifiez-le pour utiliser tout le format "
              "(plusieurs événements, règles, groupes : voir docs/cohorts.md).",
        "en": "The builder fills this field in; edit it to use the whole format "
              "(several events, rules, groups: see docs/cohorts.md).",
    },
    "co_not_builder": {
        "fr": "Cette définition utilise plus que ce que le constructeur affiche : modifiez-la dans le "
              "champ JSON (définition complète).",
        "en": "This definition uses more than the builder shows: edit it in the JSON field (full "
              "definition).",
    },
    "co_saved": {"fr": "Mes définitions enregistrées", "en": "My saved definitions"},
    "co_no_saved": {"fr": "Aucune définition enregistrée.", "en": "No saved definition."},
    "co_versions": {"fr": "Versions (ouvrir)", "en": "Versions (open)"},
    "co_created": {"fr": "Dernière version", "en": "Latest version"},
    "co_version": {"fr": "version", "en": "version"},
    "co_saved_as": {"fr": "Enregistrée : {name}, version {version}.",
                    "en": "Saved: {name}, version {version}."},
    "co_loaded": {"fr": "Ouverte : {name}, version {version}.", "en": "Opened: {name}, version {version}."},
    "co_error": {"fr": "Erreur", "en": "Error"},
    "co_whole": {"fr": "{field} : un nombre entier positif est attendu",
                 "en": "{field}: a whole number (0 or more) is expected"},
    "co_number": {"fr": "{field} : un nombre est attendu", "en": "{field}: a number is expected"},
    "co_choice": {"fr": "{field} : valeur inconnue", "en": "{field}: unknown value"},
    "co_too_many": {"fr": "{n} concepts dans un ensemble : la limite est {limit}",
                    "en": "{n} concepts in one set: the limit is {limit}"},
    "co_bad_id": {"fr": "identifiant de concept invalide : {value}", "en": "invalid concept id: {value}"},
    "co_unknown_ids": {"fr": "concept(s) absent(s) du vocabulaire chargé : {ids}",
                       "en": "concept(s) not in the loaded vocabulary: {ids}"},
    "co_too_many_fields": {"fr": "formulaire trop long", "en": "the form has too many fields"},
    "co_form_type": {"fr": "le formulaire doit être envoyé en application/x-www-form-urlencoded",
                     "en": "send the form as application/x-www-form-urlencoded"},
    "co_auto_at_least": {"fr": "au moins {n} événement(s) {domain}", "en": "at least {n} {domain} event(s)"},
    "co_auto_none": {"fr": "aucun événement {domain}", "en": "no {domain} event"},
})  # fmt: skip


# --- the builder's state: the form's fields ----------------------------------------------


@dataclass
class Builder:
    """What the builder form shows; numbers stay as typed until a definition is built."""

    entry_domain: str = "condition"
    entry_occurrence: str = "first"
    entry_concepts: list[int] = field(default_factory=list)
    entry_desc: set[int] = field(default_factory=set)
    value_min: str = ""
    value_max: str = ""
    crit_domain: str = ""
    crit_concepts: list[int] = field(default_factory=list)
    crit_desc: set[int] = field(default_factory=set)
    crit_mode: str = "at_least"
    crit_count: str = "1"
    crit_before: str = ""
    crit_after: str = ""
    crit_name: str = ""
    age_min: str = ""
    age_max: str = ""
    sex: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    prior_days: str = ""
    name: str = ""
    # the concept search
    q: str = ""
    q_domain: str = ""
    add_desc: bool = True


def _fields(pairs: list[tuple[str, str]], lang: str) -> dict[str, list[str]]:
    if len(pairs) > MAX_FIELDS:
        raise ValidationError(say(lang, "co_too_many_fields"))
    out: dict[str, list[str]] = defaultdict(list)
    for key, value in pairs:
        out[key].append(value)
    return out


def _digits(value: str, length: int) -> bool:
    """ASCII digits only, at most ``length`` of them (int() takes other scripts' digits too)."""
    return value.isascii() and value.isdecimal() and len(value) <= length


def concept_id(value: str, lang: str) -> int:
    v = value.strip()
    if not _digits(v, 10) or not 0 < int(v) <= MAX_CONCEPT_ID:
        raise ValidationError(say(lang, "co_bad_id", value=v[:20]))
    return int(v)


def parse_builder(pairs: list[tuple[str, str]], lang: str) -> Builder:
    """The builder's state from its form fields (a GET query or a POST body); ValidationError
    for values no form of this page sends (unknown choices, bad concept ids, too many)."""
    f = _fields(pairs, lang)

    def text(key: str, limit: int = 200) -> str:
        return f[key][0].strip()[:limit] if f.get(key) else ""

    def choice(key: str, allowed: tuple[str, ...], default: str, label: str) -> str:
        value = text(key) or default
        if value not in allowed:
            raise ValidationError(say(lang, "co_choice", field=TEXT[label][lang]))
        return value

    def ids(key: str) -> list[int]:
        out = dict.fromkeys(concept_id(v, lang) for v in f.get(key, []))
        if len(out) > MAX_CONCEPT_SET_ITEMS:
            raise ValidationError(say(lang, "co_too_many", n=len(out), limit=MAX_CONCEPT_SET_ITEMS))
        return list(out)

    sexes = [s for s in SEXES if s in f.get("sex", [])]
    if len(set(f.get("sex", []))) != len(sexes):
        raise ValidationError(say(lang, "co_choice", field=TEXT["co_sex"][lang]))
    sites = list(dict.fromkeys(v.strip() for v in f.get("site", [])))
    if len(sites) > MAX_SITES or any(re.fullmatch(NAME_PATTERN, s) is None for s in sites):
        raise ValidationError(say(lang, "co_choice", field=TEXT["co_sites"][lang]))
    submitted = "b" in f  # the builder's own form: unticked boxes are absent, not defaults
    return Builder(
        entry_domain=choice("entry_domain", DOMAINS, "condition", "co_domain"),
        entry_occurrence=choice("entry_occurrence", ("first", "all"), "first", "co_occurrence"),
        entry_concepts=ids("entry_concept"),
        entry_desc=set(ids("entry_desc")),
        value_min=text("value_min", 30),
        value_max=text("value_max", 30),
        crit_domain=choice("crit_domain", ("", *DOMAINS), "", "co_crit_domain"),
        crit_concepts=ids("crit_concept"),
        crit_desc=set(ids("crit_desc")),
        crit_mode=choice("crit_mode", ("at_least", "none"), "at_least", "co_crit_mode"),
        crit_count=text("crit_count", 10) or "1",
        crit_before=text("crit_before", 10),
        crit_after=text("crit_after", 10),
        crit_name=text("crit_name"),
        age_min=text("age_min", 10),
        age_max=text("age_max", 10),
        sex=sexes,
        sites=sites,
        prior_days=text("prior_days", 10),
        name=text("name", 64),
        q=text("q", MAX_QUERY_LENGTH),
        q_domain=choice("q_domain", ("", *DOMAINS), "", "co_search_domain"),
        add_desc=bool(f.get("add_desc")) if submitted else True,
    )


def apply_actions(b: Builder, pairs: list[tuple[str, str]], lang: str) -> None:
    """The builder's buttons: add a concept found to the entry or the criterion, remove one."""
    f = _fields(pairs, lang)
    for key, concepts, desc in (
        ("entry", b.entry_concepts, b.entry_desc),
        ("crit", b.crit_concepts, b.crit_desc),
    ):
        for value in f.get(f"add_{key}", [])[:1]:
            cid = concept_id(value, lang)
            if cid not in concepts:
                if len(concepts) >= MAX_CONCEPT_SET_ITEMS:
                    raise ValidationError(
                        say(lang, "co_too_many", n=len(concepts) + 1, limit=MAX_CONCEPT_SET_ITEMS)
                    )
                concepts.append(cid)
                if b.add_desc:
                    desc.add(cid)
        for value in f.get(f"remove_{key}", [])[:1]:
            if _digits(value.strip(), 10) and int(value) in concepts:
                concepts.remove(int(value))
                desc.discard(int(value))


def _whole(value: str, label: str, lang: str) -> int | None:
    if not value:
        return None
    if not _digits(value, 6):
        raise ValidationError(say(lang, "co_whole", field=TEXT[label][lang]))
    return int(value)


def _number(value: str, label: str, lang: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValidationError(say(lang, "co_number", field=TEXT[label][lang]))
    return number


def to_definition(b: Builder, lang: str, names: tuple[str, str] = ("entry", "criterion")) -> CohortDefinition:
    """The definition the builder describes (``names``: its two concept sets'); ValidationError
    names the field at fault."""

    def concept_set(concepts: list[int], desc: set[int]) -> dict[str, Any]:
        return {"items": [{"concept_id": c, "descendants": c in desc} for c in concepts]}

    sets: dict[str, Any] = {}
    event: dict[str, Any] = {"domain": b.entry_domain}
    if b.entry_concepts:
        sets[names[0]] = concept_set(b.entry_concepts, b.entry_desc)
        event["concept_set"] = names[0]
    low, high = _number(b.value_min, "co_value_min", lang), _number(b.value_max, "co_value_max", lang)
    if low is not None or high is not None:
        event["value"] = {"min": low, "max": high}
    data: dict[str, Any] = {
        "name": b.name,
        "concept_sets": sets,
        "entry": {"events": [event], "occurrence": b.entry_occurrence},
    }
    prior = _whole(b.prior_days, "co_prior", lang)
    if prior:
        data["observation"] = {"prior_days": prior}
    demographics: dict[str, Any] = {}
    age_min, age_max = _whole(b.age_min, "co_age_min", lang), _whole(b.age_max, "co_age_max", lang)
    if age_min is not None or age_max is not None:
        demographics["age"] = {"min": age_min, "max": age_max}
    if b.sex:
        demographics["sex"] = b.sex
    if b.sites:
        demographics["sites"] = b.sites
    if demographics:
        data["demographics"] = demographics
    if b.crit_domain:
        crit_event: dict[str, Any] = {"domain": b.crit_domain}
        if b.crit_concepts:
            sets[names[1]] = concept_set(b.crit_concepts, b.crit_desc)
            crit_event["concept_set"] = names[1]
        n = 1 if b.crit_mode == "none" else _whole(b.crit_count, "co_crit_count", lang) or 0
        criterion: dict[str, Any] = {
            "event": crit_event,
            "occurrences": {"type": "at_least", "count": n},
            "negate": b.crit_mode == "none",
        }
        before = _whole(b.crit_before, "co_days_before", lang)
        after = _whole(b.crit_after, "co_days_after", lang)
        if before is not None or after is not None:
            criterion["window"] = {
                "start": {"days": before, "direction": "before"},
                "end": {"days": after, "direction": "after"},
            }
        auto = "co_auto_none" if b.crit_mode == "none" else "co_auto_at_least"
        name = b.crit_name or say(lang, auto, n=n, domain=b.crit_domain)
        data["inclusion_rules"] = [{"name": name, "criteria": {"type": "all", "items": [criterion]}}]
    return parse_definition(data)


def from_definition(d: CohortDefinition, lang: str) -> Builder | None:
    """The builder showing ``d``, or None when ``d`` uses more than the builder shows."""
    if len(d.entry.events) != 1 or len(d.inclusion_rules) > 1 or d.entry.events[0].domain not in DOMAINS:
        return None
    event = d.entry.events[0]
    b = Builder(entry_domain=event.domain, entry_occurrence=d.entry.occurrence)
    b.name = d.name if re.fullmatch(NAME_PATTERN, d.name) else ""
    names = [event.concept_set or "entry", "criterion"]

    def items(name: str) -> tuple[list[int], set[int]]:
        cs = d.concept_sets[name].items
        return [i.concept_id for i in cs], {i.concept_id for i in cs if i.descendants}

    if event.concept_set:
        b.entry_concepts, b.entry_desc = items(event.concept_set)
    if event.value is not None:
        b.value_min = "" if event.value.min is None else f"{event.value.min:g}"
        b.value_max = "" if event.value.max is None else f"{event.value.max:g}"
    b.prior_days = str(d.observation.prior_days) if d.observation.prior_days else ""
    if d.demographics is not None:
        age = d.demographics.age
        b.age_min = "" if age is None or age.min is None else str(age.min)
        b.age_max = "" if age is None or age.max is None else str(age.max)
        b.sex, b.sites = list(d.demographics.sex or []), list(d.demographics.sites or [])
    if d.inclusion_rules:
        rule = d.inclusion_rules[0]
        (item, *others) = rule.criteria.items
        if others or not isinstance(item, Criterion) or item.event.domain not in DOMAINS:
            return None
        b.crit_domain, b.crit_name = item.event.domain, rule.name
        if item.event.concept_set:
            names[1] = item.event.concept_set
            b.crit_concepts, b.crit_desc = items(item.event.concept_set)
        b.crit_mode = "none" if item.negate else "at_least"
        b.crit_count = str(item.occurrences.count)
        if item.window is not None:
            start, end = item.window.start, item.window.end
            b.crit_before = "" if start.days is None else str(start.days)
            b.crit_after = "" if end.days is None else str(end.days)
    try:
        rebuilt = to_definition(b, lang, (names[0], names[1]))
    except HdhubError:
        return None
    return b if fingerprint(rebuilt) == fingerprint(d) else None


def pretty(definition: CohortDefinition) -> str:
    body = definition.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    return orjson.dumps({"format": FORMAT, **body}, option=orjson.OPT_INDENT_2).decode()


# --- what the page shows ------------------------------------------------------------------


def _num(value: Any, lang: str) -> str:
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u202f" if lang == "fr" else ",")
    return str(value)


def _group(cells: list[dict[str, Any]], key: str) -> dict[Any, tuple[int, int]]:
    """Sum of the cells shown per ``key`` value, and how many cells were hidden ("< n")."""
    out: dict[Any, tuple[int, int]] = {}
    for c in cells:
        shown, hidden = out.get(c[key], (0, 0))
        if isinstance(c["persons"], int):
            out[c[key]] = (shown + c["persons"], hidden)
        else:
            out[c[key]] = (shown, hidden + 1)
    return out


def _bar(label: str, shown: int, hidden: int, threshold: int | None, lang: str) -> Bar:
    if not hidden or threshold is None:
        return Bar(label, shown, _num(shown, lang))
    below = f"< {threshold}"
    text = below if shown == 0 and hidden == 1 else f"{_num(shown, lang)} + {hidden} \u00d7 ({below})"
    return Bar(label, shown, text, upto=hidden * (threshold - 1))


def charts(result: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """Bar charts by sex, by age band (sums of the sex-by-age cells shown) and by site."""
    t = {key: value[lang] for key, value in TEXT.items()}
    threshold = None if result["exact"] else result["threshold"]
    cells, sites = result["breakdowns"]["sex_age"], result["breakdowns"]["site"]
    by_sex = _group(cells, "sex")
    by_age = _group(cells, "age_band")
    sexes = sorted(by_sex, key=lambda s: SEXES.index(s) if s in SEXES else len(SEXES))
    out = []
    for key, title, header, bars in (
        ("sex", t["co_by_sex"], t["co_sex"].split(" (")[0],
         [_bar(t.get(f"co_{s}", str(s)), *by_sex[s], threshold, lang) for s in sexes]),
        ("age", t["co_by_age"], t["co_age_band"],
         [_bar(_band(a), *by_age[a], threshold, lang) for a in sorted(by_age)]),
        ("site", t["co_by_site"], "Site",
         [_bar(str(c["site"]), *((c["persons"], 0) if isinstance(c["persons"], int) else (0, 1)), threshold,
               lang) for c in sites]),
    ):  # fmt: skip
        if bars:
            out.append({"id": key, "title": title, "svg": bar_chart(title, t["persons"], bars, header)})
    return out


def _band(age: Any) -> str:
    return f"{age}\u2013{age + 9}" if isinstance(age, int) else str(age)


def cross_table(result: dict[str, Any], lang: str) -> dict[str, Any]:
    """The sex-by-age-band cells as the API shows them: rows of age bands, columns of sexes."""
    cells = result["breakdowns"]["sex_age"]
    sexes = sorted({c["sex"] for c in cells}, key=lambda s: SEXES.index(s) if s in SEXES else len(SEXES))
    bands = sorted({c["age_band"] for c in cells})
    at = {(c["age_band"], c["sex"]): c["persons"] for c in cells}
    return {
        "sexes": [TEXT.get(f"co_{s}", {}).get(lang, str(s)) for s in sexes],
        "rows": [(_band(a), [_num(at[(a, s)], lang) if (a, s) in at else "0" for s in sexes]) for a in bands],
    }


def _saved(hub: Any, principal: Principal) -> list[dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for row in list_definitions(hub.catalog, principal.name):  # newest version first per name
        entry = grouped.setdefault(row.name, {"name": row.name, "versions": [], "latest": row.created_at})
        entry["versions"].append(row.version)
    return [
        {**g, "latest": g["latest"].isoformat()[:16].replace("T", " ") if g["latest"] else ""}
        for g in grouped.values()
    ]


def show(
    request: Request,
    principal: Principal,
    b: Builder | None,
    *,
    text: str = "",
    result: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    """The page: the builder (``b``; None: a definition the builder cannot show), the JSON
    field, the result of a count, the user's saved definitions. Reads the vocabulary (the
    concepts shown, the search) and the sites from the warehouse."""
    hub, lang = get_hub(request), language(request)
    fits = b is not None
    b = b or Builder()
    search: list[dict[str, Any]] | None = None
    concepts: dict[int, dict[str, Any]] = {}
    sites: list[str] = []
    try:
        with read_only(hub.settings.warehouse_url_resolved) as con:
            wanted = set(b.entry_concepts) | set(b.crit_concepts)
            concepts = describe_concepts(con, wanted)
            rows = con.con.execute(
                "SELECT DISTINCT site FROM person_site ORDER BY site LIMIT ?", [MAX_SITES]
            ).fetchall()
            sites = [r[0] for r in rows]
            unknown = sorted(wanted - set(concepts))
            if unknown and error is None:
                shown = ", ".join(map(str, unknown[:10])) + (" …" if len(unknown) > 10 else "")
                error, status = say(lang, "co_unknown_ids", ids=shown), 422
            if b.q:
                search = search_concepts(con, b.q, domain=b.q_domain or None)
    except HdhubError as exc:
        if error is None:
            error, status = exc.message, exc.status
    can_define = decide(principal, "cohorts:define").allowed
    context: dict[str, Any] = {
        "b": b, "fits": fits, "text": text, "result": result, "error": error, "notice": notice,
        "search": search, "concepts": concepts, "domains": DOMAINS, "sexes": SEXES,
        "sites": sites + [s for s in b.sites if s not in sites], "can_define": can_define,
        "saved": _saved(hub, principal) if can_define else [], "num": lambda v: _num(v, lang),
    }  # fmt: skip
    if result is not None:
        context["charts"] = charts(result, lang)
        context["cross"] = cross_table(result, lang)
        threshold = result["threshold"]
        context["note"] = (
            TEXT["co_exact"][lang] if result["exact"] else say(lang, "co_obfuscated", threshold=threshold)
        )
        context["hidden_note"] = None if result["exact"] else say(lang, "co_hidden_bars", threshold=threshold)
        seconds = f"{result['seconds']:.2f}"
        context["seconds"] = say(lang, "co_seconds", s=seconds.replace(".", ",") if lang == "fr" else seconds)
    response = render(request, "cohorts.html.j2", principal, status=status, **context)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the routes ---------------------------------------------------------------------------


@router.get("/cohorts")
def cohorts_page(request: Request) -> Response:
    principal = signed_in(request, "cohorts:count")
    if not isinstance(principal, Principal):
        return principal
    lang, hub = language(request), get_hub(request)
    pairs = list(request.query_params.multi_items())
    load = request.query_params.get("load")
    b: Builder | None = None
    try:
        if load is not None:
            if not decide(principal, "cohorts:define").allowed:
                return forbidden_page(request, principal)
            version = request.query_params.get("version") or None
            if version is not None and not _digits(version, 9):
                raise ValidationError(say(lang, "co_whole", field=TEXT["co_version"][lang]))
            row = load_saved(request, hub, principal, load[:64], int(version) if version else None)
            definition = parse_definition(row.definition)
            b = from_definition(definition, lang)
            if b is not None:
                b.name = row.name  # saving again makes its next version
            key = "co_saved_as" if request.query_params.get("saved") else "co_loaded"
            notice = say(lang, key, name=row.name, version=row.version)
            return show(request, principal, b, text=pretty(definition), notice=notice)
        b = parse_builder(pairs, lang)
        apply_actions(b, pairs, lang)
        return show(request, principal, b, text=pretty(to_definition(b, lang)))
    except HdhubError as exc:
        return show(request, principal, b or Builder(), error=exc.message, status=exc.status)


Posted = list[tuple[str, str]] | HdhubError


async def _posted(request: Request, action: str) -> tuple[Principal | Response, Posted]:
    """The signed-in principal allowed ``action`` and the form's fields (or why they cannot
    be read: not a form, too large, too many fields)."""
    same_origin(request)
    principal = await run_in_threadpool(signed_in, request, action)
    if not isinstance(principal, Principal):
        if principal.status_code == 303:  # after signing in, back to the page, not to a POST route
            return RedirectResponse("/login?next=/cohorts", status_code=303), []
        return principal, []
    lang = language(request)
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return principal, ValidationError(say(lang, "co_form_type"))
    try:
        body = await read_body(request, MAX_FORM_BYTES, "the form is too large")
        return principal, parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS,
        )  # fmt: skip
    except HdhubError as exc:
        return principal, exc
    except ValueError:
        return principal, ValidationError(say(lang, "co_too_many_fields"))


def _definition(pairs: list[tuple[str, str]], lang: str) -> tuple[CohortDefinition, Builder | None, str]:
    """The posted definition (the JSON field, or else the builder's fields), the builder
    showing it (None when it cannot) and its JSON text."""
    posted = [v for k, v in pairs if k == "definition"]
    if posted:
        definition = parse_definition(posted[0])
        return definition, from_definition(definition, lang), pretty(definition)
    b = parse_builder(pairs, lang)
    definition = to_definition(b, lang)
    return definition, b, pretty(definition)


def _failed(request: Request, principal: Principal, pairs: list[tuple[str, str]], message: str,
            status: int) -> Response:  # fmt: skip
    """The page again with the error, the posted builder or JSON text kept when readable."""
    lang = language(request)
    posted = [v for k, v in pairs if k == "definition"]
    if posted:
        return show(request, principal, Builder(), text=posted[0], error=message, status=status)
    try:
        b = parse_builder(pairs, lang)
    except HdhubError:
        b = Builder()
    return show(request, principal, b, error=message, status=status)


def _count(request: Request, principal: Principal, pairs: list[tuple[str, str]]) -> Response:
    try:
        definition, b, text = _definition(pairs, language(request))
        result = count_definition(request, get_hub(request), principal, definition)
    except HdhubError as exc:
        return _failed(request, principal, pairs, exc.message, exc.status)
    return show(request, principal, b, text=text, result=result)


def _save(request: Request, principal: Principal, pairs: list[tuple[str, str]]) -> Response:
    hub = get_hub(request)
    try:
        definition, _b, _text = _definition(pairs, language(request))
        name = next((v.strip() for k, v in pairs if k == "name" and v.strip()), "") or definition.name
        with read_only(hub.settings.warehouse_url_resolved) as con:
            resolve_concept_sets(con, definition)  # unknown concepts are refused before saving
        row = save_named(request, hub, principal, name, definition)
    except HdhubError as exc:
        return _failed(request, principal, pairs, exc.message, exc.status)
    return RedirectResponse(f"/cohorts?load={quote(row.name)}&version={row.version}&saved=1", status_code=303)


@router.post("/cohorts/count")
async def count_page(request: Request) -> Response:
    principal, pairs = await _posted(request, "cohorts:count")
    if not isinstance(principal, Principal):
        return principal
    if isinstance(pairs, HdhubError):
        return await run_in_threadpool(
            show, request, principal, Builder(), error=pairs.message, status=pairs.status
        )
    return await run_in_threadpool(_count, request, principal, pairs)


@router.post("/cohorts/save")
async def save_page(request: Request) -> Response:
    principal, pairs = await _posted(request, "cohorts:define")
    if not isinstance(principal, Principal):
        return principal
    if isinstance(pairs, HdhubError):
        return await run_in_threadpool(
            show, request, principal, Builder(), error=pairs.message, status=pairs.status
        )
    return await run_in_threadpool(_save, request, principal, pairs)
