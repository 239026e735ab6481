# ruff: noqa: RUF001  (French writing has typographic apostrophes and dashes)
"""De-identification of French clinical notes, measured on labelled synthetic notes."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from functools import cache
from itertools import pairwise

import pytest

from hdhub.errors import ValidationError
from hdhub.privacy import note_deid
from hdhub.privacy.note_deid import ENTITY_TYPES, MAX_NOTE_CHARS, deidentify, find_entities
from hdhub.synth import labelled_notes as ln
from hdhub.synth.identifiers import nir_is_valid, nir_key

SEED = 2024


@cache
def notes() -> tuple[ln.LabelledNote, ...]:
    return tuple(ln.labelled_notes(300, seed=SEED))


def spans(text: str) -> list[tuple[str, str]]:
    return [(e.type, text[e.start : e.end]) for e in find_entities(text)]


# Accuracy on the labelled notes ------------------------------------------------------------------


def test_recall_of_every_type_and_precision() -> None:
    scores = ln.evaluate(list(notes()))
    report = {t: (round(s.recall, 3), round(s.precision, 3), s.found + s.missed) for t, s in scores.items()}
    for kind in ENTITY_TYPES:
        s = scores[kind]
        assert s.found + s.missed >= 30, (kind, report)  # every type is labelled, often
        assert s.recall >= 0.95, (kind, report)
        assert s.precision >= 0.8, (kind, report)
    assert scores["ALL"].precision >= 0.9, report


def test_no_labelled_identifier_is_left_in_the_output() -> None:
    """Phones, e-mails, NIR and IPP never remain; a name may only where it is written with no context
    at all (a rare name alone in a sentence), under 1 % of the name mentions."""
    leaks: dict[str, list[str]] = {t: [] for t in ("NAME", "PHONE", "EMAIL", "NIR", "IPP")}
    mentions = 0
    for note in notes():
        out = deidentify(note.text, date_shift_days=11)
        elsewhere = list(note.text)  # the text outside the labelled spans ("Pierre" of "CMP Pierre Janet")
        for e in note.entities:
            elsewhere[e.start : e.end] = "\0" * (e.end - e.start)
        context = "".join(elsewhere)
        for e in note.entities:
            if e.type not in leaks:
                continue
            mentions += e.type == "NAME"
            value = note.text[e.start : e.end]
            word = re.compile(rf"(?<![\w-]){re.escape(value)}(?![\w-])")
            if len(word.findall(out)) > len(word.findall(context)):
                leaks[e.type].append(value)
    assert not leaks["PHONE"] and not leaks["EMAIL"] and not leaks["NIR"] and not leaks["IPP"], leaks
    assert len(leaks["NAME"]) <= 0.01 * mentions, leaks["NAME"]


def test_entities_are_sorted_non_overlapping_and_typed() -> None:
    for note in notes()[:100]:
        found = find_entities(note.text)
        assert all(e.type in ENTITY_TYPES and 0 <= e.start < e.end <= len(note.text) for e in found)
        assert all(a.end <= b.start for a, b in pairwise(found))


def test_distractors_are_not_identifiers() -> None:
    text = (
        "TA 140/90 mmHg, FC 72/min, EVA 3/10, Glasgow 15. Kardégic 75 mg 1/j, Lovenox 4000 UI/j, "
        "héparine 25000 UI/24 h. HbA1c 7,2 %, créatinine 85 µmol/L, plaquettes 250 000/mm3. "
        "Apyrexie à J+3. Patient de 72 ans, chambre 214, lit 2. Diagnostic I21.4, E11.9. "
        "Calcul (pierre) de 6 mm, urines rosées. Maladie de Parkinson, signe de Murphy négatif. "
        "Hôpital Édouard Herriot, rue Victor Hugo. Score de Wells 2, NYHA II, 1/2 comprimé, 2 x 500 mg."
    )
    assert spans(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient : DUPONT Jean, né le 12/03/1950", [("NAME", "DUPONT Jean"), ("DATE", "12/03/1950")]),
        ("Vue avec Mme Marie-Claire LE GOFF.", [("NAME", "Marie-Claire LE GOFF")]),
        ("Signé : Dr A. Martin", [("NAME", "A. Martin")]),
        ("Reçu M. Kerhervé ; Kerhervé revient.", [("NAME", "Kerhervé"), ("NAME", "Kerhervé")]),
        ("accompagnée de sa fille Gwenaëlle", [("NAME", "Gwenaëlle")]),
        ("Mme de Lestrange, née du Plessis", [("NAME", "de Lestrange"), ("NAME", "du Plessis")]),
        ("Tél. +33 (0)4 72 11 22 33 ou 06.12.34.56.78", [("PHONE", "+33 (0)4 72 11 22 33"),
                                                           ("PHONE", "06.12.34.56.78")]),
        ("Écrire à jean.dupont@chu-lyon.fr.", [("EMAIL", "jean.dupont@chu-lyon.fr")]),
        ("NIR : 2 84 05 2A 123 456 03", [("NIR", "2 84 05 2A 123 456 03")]),
        ("IPP : 0112345678, NDA : 2403120045", [("IPP", "0112345678"), ("ID", "2403120045")]),
        ("N° de séjour : V24-001234 ; RPPS 10001234567", [("ID", "V24-001234"), ("ID", "10001234567")]),
        ("Venue n° 24031200 ; n° patient : 8001234", [("ID", "24031200"), ("IPP", "8001234")]),
        (
            "Domicile : 12 bis rue du 8 Mai 1945, 85000 La Roche-sur-Yon",
            [("ADDRESS", "12 bis rue du 8 Mai 1945, 85000 La Roche-sur-Yon")],
        ),
        ("CHU, 5 place d'Arsonval – 69437 Lyon CEDEX 03",
         [("ADDRESS", "5 place d'Arsonval – 69437 Lyon CEDEX 03")]),
        ("le 1er avril 2023, le 3 janvier, le 2024-03-12", [("DATE", "1er avril 2023"), ("DATE", "3 janvier"),
                                                          ("DATE", "2024-03-12")]),
    ],
)  # fmt: skip
def test_rules(text: str, expected: list[tuple[str, str]]) -> None:
    assert spans(text) == expected


def test_nir_key_or_keyword() -> None:
    valid = f"1841275117094{nir_key('1841275117094'):02d}"
    assert nir_is_valid(valid)
    corsica = f"2 84 05 2A 123 456 {nir_key('2840519123456'):02d}"  # 2A counts as 19 in the key
    assert spans(f"INS {corsica}") == spans(f"voir {corsica}") == [("NIR", corsica)]
    assert spans(f"voir {valid}") == [("NIR", valid)]
    bad = valid[:-2] + "00"
    assert spans(f"voir {bad}") == [("ID", bad)]  # still an identifier, not a NIR
    assert spans(f"NIR : {bad}") == [("NIR", bad)]  # a typo in the key, after its keyword


# Date shifting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "expected"),
    [
        ("le 12/03/2024", 30, "le 11/04/2024"),
        ("le 28/02/2024", 1, "le 29/02/2024"),  # leap year
        ("le 28/02/2023", 1, "le 01/03/2023"),  # month roll-over
        ("le 31/12/2023", 1, "le 01/01/2024"),  # year roll-over
        ("le 31.12.23", 1, "le 01.01.24"),
        ("le 1/3/2024", 30, "le 31/3/2024"),  # unpadded stays unpadded
        ("le 15-06-2021", -20, "le 26-05-2021"),
        ("le 2024-03-12", -12, "le 2024-02-29"),
        ("le 12 mars 2024", 30, "le 11 avril 2024"),
        ("le 31 mars 2023", 1, "le 1er avril 2023"),
        ("le 1er avril 2023", -1, "le 31 mars 2023"),
        ("le 20 décembre 2023", 15, "le 4 janvier 2024"),
        ("le 12 fevrier 2024", 30, "le 13 mars 2024"),
        ("le lundi 3 janvier 2022", 1, "le mardi 4 janvier 2022"),  # the weekday follows
        ("vu le 12/01/2023, revu le 3 janvier.", 30, "vu le 11/02/2023, revu le 2 février."),
        ("le 31/02/2024", 3, "le [DATE]"),  # not a date: tagged
    ],
)
def test_date_shift_keeps_the_format(text: str, days: int, expected: str) -> None:
    assert deidentify(text, date_shift_days=days) == expected


def test_date_shift_keeps_intervals_and_no_shift_tags() -> None:
    first, second = date(2023, 11, 20), date(2024, 2, 27)
    text = f"Entrée le {first:%d/%m/%Y}, sortie le {second.day} février {second.year}."
    out = deidentify(text, date_shift_days=45)
    a, b = date(2024, 1, 4), date(2024, 4, 12)
    assert a - first == timedelta(45) and b - second == timedelta(45)
    assert out == f"Entrée le {a:%d/%m/%Y}, sortie le {b.day} avril {b.year}."
    assert deidentify(text) == "Entrée le [DATE], sortie le [DATE]."


def test_deidentify_tags() -> None:
    text = "Mme Kerhervé, 06 12 34 56 78, k@free.fr, 3 rue Pasteur 29000 Quimper, IPP 12345678."
    assert deidentify(text) == "Mme [NOM], [TEL], [EMAIL], [ADRESSE], IPP [IPP]."


# The labelled notes ----------------------------------------------------------------------------------


def test_labelled_notes_are_deterministic_exact_and_varied() -> None:
    a, b = ln.labelled_notes(40, seed=3), ln.labelled_notes(40, seed=3)
    assert a == b
    assert ln.labelled_notes(40, seed=4) != a
    assert len(ln.TEMPLATES) >= 15 and {n.kind for n in notes()} == set(ln.TEMPLATES)
    for note in notes():
        for e in note.entities:
            value = note.text[e.start : e.end]
            assert value and value == value.strip() and e.type in ENTITY_TYPES, (note.kind, e, value)
    labelled = [note.text[e.start : e.end] for note in notes() for e in note.entities if e.type == "NIR"]
    assert labelled and all(
        nir_is_valid(v.replace(" ", "").replace("2A", "19").replace("2B", "18")) for v in labelled
    )
    dates = {note.text[e.start : e.end] for note in notes() for e in note.entities if e.type == "DATE"}
    assert any(re.fullmatch(r"\d\d/\d\d/\d\d", d) for d in dates)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d", d) for d in dates)
    assert any(re.fullmatch(r"\d\d?(er)? [a-zéû]+ \d{4}", d) for d in dates)
    assert any(re.fullmatch(r"\d\d?(er)? [a-zéû]+", d) for d in dates)  # without a year


def test_names_are_mostly_held_out_from_the_de_identifier_lists() -> None:
    """The evaluation is not circular: most name words are in no list of the de-identifier."""
    listed = {note_deid._fold(n) for n in note_deid.FIRST_NAMES + note_deid.SURNAMES}
    for pool in (ln.HELD_OUT_FIRST_F, ln.HELD_OUT_FIRST_M, ln.HELD_OUT_SURNAMES):
        assert (
            len(pool) >= 50 and not {note_deid._fold(w) for n in pool for w in re.split(r"[ -]", n)} & listed
        )
    words = [
        w
        for note in notes()
        for e in note.entities
        if e.type == "NAME"
        for w in re.split(r"[ \-]", note.text[e.start : e.end])
        if len(w) > 2
        and "." not in w
        and note_deid._fold(w) not in {"le", "de", "du", "van", "ben", "el", "dos"}
    ]
    held_out = sum(note_deid._fold(w) not in listed for w in words)
    assert held_out >= 0.5 * len(words), (held_out, len(words))


# Hostile input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, b"Mme Dupont", 42, ["Mme Dupont"]])
def test_non_str_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        find_entities(value)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        deidentify(value)  # type: ignore[arg-type]


def test_oversized_and_bad_shift_are_refused() -> None:
    with pytest.raises(ValidationError, match="at most"):
        deidentify("a" * (MAX_NOTE_CHARS + 1))
    assert find_entities("a" * MAX_NOTE_CHARS) == []
    for bad in (1.5, "3", True):
        with pytest.raises(ValidationError):
            deidentify("le 12/03/2024", date_shift_days=bad)  # type: ignore[arg-type]
    assert deidentify("le 12/03/2024", date_shift_days=10**9) == "le [DATE]"  # out of range: tagged


PATHOLOGICAL = {
    "digits and spaces": "1 " * 500_000,
    "letters": "a" * MAX_NOTE_CHARS,
    "at signs": "@" * MAX_NOTE_CHARS,
    "digits": "9" * MAX_NOTE_CHARS,
    "upper case": "A" * MAX_NOTE_CHARS,
    "upper-case words": "AB " * 333_333,
    "name pairs": "Jean DUPONT " * 83_333,
    "titles": "Mme A. " * 142_857,
    "e-mail-like": "a@b.cc " * 142_857,
    "long local part": "x" * 999_990 + "@gmail.com",
    "date-like": "12/" * 333_333,
    "phone-like": "+33 " * 250_000,
    "address-like": "12 rue A " * 111_111,
    "keywords": "IPP 1" * 200_000,
    "dashes": "1-" * 500_000,
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_input_is_linear(name: str) -> None:
    text = PATHOLOGICAL[name]
    assert len(text) <= MAX_NOTE_CHARS
    started = time.perf_counter()
    deidentify(text, date_shift_days=5)
    # Not a speed test (benchmarks/deid.py is): a guard against catastrophic backtracking. Linear
    # work on 1 MB takes about a second, several on a loaded machine; a pattern that backtracks
    # quadratically on it would take hours.
    assert time.perf_counter() - started < 60
