# ruff: noqa: RUF001  (French writing has typographic apostrophes and dashes)
"""Labelled synthetic French clinical notes: the test and benchmark set of the note de-identifier.

``labelled_notes(n, seed)`` writes ``n`` notes from 16 templates of French hospital writing
(consultation, hospitalisation, urgences, lettre au médecin traitant, ordonnance, compte rendu
opératoire, radiologie, biologie, lettre de liaison de sortie, transmissions infirmières,
consultation d'anesthésie, note sociale, anatomopathologie, endoscopie, certificat,
pédiatrie), each with the exact character spans of its identifiers (``Entity`` of
``hdhub.privacy.note_deid``): names of patients, relatives and staff in several forms, dates
in eight formats, phones, e-mails, addresses, NIR with a valid key, IPP, stay numbers, RPPS,
accession numbers. The notes also hold what must not be tagged: doses, lab values with units,
blood pressures, ages, ICD-10 codes, ``J+3``, scores, rooms, eponyms (``maladie de Parkinson``)
and common words that are also names (``calcul (pierre)``, ``rose``), lowercase or in context.
The same ``n`` and ``seed`` give the same notes.

Not circular: the names are drawn from this module's lists and from ``hdhub.synth.french``,
which the de-identifier does not use. At import they are split in two pools: the names that
the de-identifier's lists (``note_deid.FIRST_NAMES``, ``note_deid.SURNAMES``) hold, compared
without case or accents, and the held-out names that they do not hold. Each name is drawn from
the held-out pool with probability ``HELD_OUT_SHARE`` (0.6), so most name mentions can only be
found by the context rules (titles, labels, relations, upper-case surnames) and by repetition
within the note, not by a list look-up.

Both this generator and the de-identifier were written by the same hands, so their scores here
are an optimistic estimate for real notes. A few cases are kept hard on purpose: a colleague
named once with no context (``Relève faite à Tugdual Kerbrat``), and distractors that look like
names (``Rose Bengale``, ``Flux TIMI``, ``Grille AGGIR``, ``Vaccin PREVENAR``, ``Hôpital Édouard
Herriot``, ``CMP Pierre Janet``, ``Centre Jean Perrin``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from hdhub.privacy import note_deid
from hdhub.privacy.note_deid import Entity
from hdhub.synth import french
from hdhub.synth.identifiers import nir_key

__all__ = ["HELD_OUT_SHARE", "TEMPLATES", "LabelledNote", "Score", "evaluate", "labelled_notes"]

HELD_OUT_SHARE = 0.6


@dataclass(frozen=True)
class LabelledNote:
    """A note and its identifiers; ``kind`` is the template it was written from."""

    text: str
    entities: tuple[Entity, ...]
    kind: str = ""


def _split(text: str) -> list[str]:
    return text.split()


# Names: this module's lists (regional, overseas and immigrant names as seen in French hospitals)
# and hdhub.synth.french's, split at import into names the de-identifier lists and held-out ones.

_FIRST_F = _split(
    """
Gwenaëlle Nolwenn Maïwenn Enora Klervi Soizic Aziliz Rozenn Morgane Ainhoa Maider Maialen Ghjulia
Letizia Apolline Séverine Ghislaine Blandine Bérengère Sixtine Capucine Albane Ombeline Philomène
Clothilde Eulalie Hortense Léontine Mahaut Solange Violaine Yolande Zélie Aïssatou Fatoumata Binta
Kadiatou Djamila Zoubida Houria Ouarda Thi Huong Conceição Manuela Graça Carmela Concetta Malika
Bérénice Ludivine Gwladys Maryvonne Anne-Soizic Marie-Gwenn Perrine Armelle Edwige Nolwène Oriane
Faustine Héloïse Cunégonde Radegonde Viviane Lætitia Marjolaine Rosine
"""
)
_FIRST_M = _split(
    """
Erwan Gwendal Yannig Ronan Goulven Brieuc Tugdual Corentin Iñaki Xabi Peio Ghjuvanni Orsu Anselme
Aristide Barnabé Casimir Côme Cyprien Evrard Fulbert Gatien Honoré Hippolyte Isidore Lazare Léopold
Octave Philibert Prosper Séraphin Tancrède Ulysse Wandrille Zéphyrin Mamadou Ousmane Boubacar
Souleymane Ibrahima Abdoulaye Nourredine Abdelkader Lakhdar Mokhtar Tahar Minh Thanh Tuan Joaquim
Fernando Giuseppe Salvatore Ignazio Amaury Eudes Enguerrand Gonzague Jean-Goulven Pierre-Marie
Yves-Marie Loeiz Malo Riwal Gaétan Florentin Anatole
"""
)
_SURNAMES = _split(
    """
Kerhervé Quéméner Guéguen Le Bihan Le Floch Kerbrat Tréguer Le Meur Cadiou Le Cam Jaouen Prigent
Caradec Le Moal Kervella Etxeberria Mendiburu Irigoyen Larralde Harispe Elissalde Santoni Pietri
Casabianca Orsini Luciani Peretti Ouédraogo Koné Coulibaly Sissoko Keïta Benchekroun Boumediene
Bensaïd Zerrouki Khelifi Hadjadj Benyahia Tran Pham Huynh Nowak Kowalczyk Zielinski Szymanski
Grabowski Esposito Lombardi Marchetti Ferrara Barbieri Oliveira Carvalho Teixeira Moreira Sousa
Azevedo Hauswirth Schwebel Ehrhart Stoeckel Wendling Zimmermann Oberlé Vauquelin Delacourt
Grandjean Desforges Malaterre Castagnède Puyravaud Lafourcade Cazenave Dartigues Labarthe
Larrieu Peyrefitte Fabregat Roumanille Vialatte Bouscarel Lestrade Le Nabec Van Hove Ben Amor
El Idrissi de Lestrange du Plessis de Kergorlay Saint-Cricq Le Goff Le Gall Morvan Hamon-Caradec
Dubois-Kerhervé Ait-Ouali Nicolaï Mahé Le Roux Da Silva Dos Santos
"""
)
# Multi-word surnames are written above with a space; the split made them two words: join them.
_PARTICLE_WORDS = {"Le", "Van", "Ben", "El", "de", "du", "Da", "Dos"}


def _join_particles(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        if out and out[-1] in _PARTICLE_WORDS:
            out[-1] = f"{out[-1]} {w}"
        else:
            out.append(w)
    return out


_LISTED = frozenset(note_deid._fold(n) for n in note_deid.FIRST_NAMES + note_deid.SURNAMES)


def _listed(name: str) -> bool:
    """Whether the de-identifier's lists hold a name (any of its words), without case or accents."""
    return any(note_deid._fold(w) in _LISTED for w in re.split(r"[ \-]", name) if w not in _PARTICLE_WORDS)


def _pools(names: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    unique = list(dict.fromkeys(names))
    return tuple(n for n in unique if _listed(n)), tuple(n for n in unique if not _listed(n))


KNOWN_FIRST_F, HELD_OUT_FIRST_F = _pools(list(french.FIRST_F) + _FIRST_F)
KNOWN_FIRST_M, HELD_OUT_FIRST_M = _pools(list(french.FIRST_M) + _FIRST_M)
KNOWN_SURNAMES, HELD_OUT_SURNAMES = _pools(list(french.LAST) + _join_particles(_SURNAMES))

# Places and hospitals.

_STREET_TYPES = ("rue", "rue", "rue", "avenue", "boulevard", "bd", "allée", "chemin", "impasse", "place",
                 "quai", "route", "cours", "Rue", "Avenue", "square", "résidence")  # fmt: skip
_STREET_NAMES = (
    "des Lilas", "Jean Jaurès", "Victor Hugo", "du Général de Gaulle", "de la République", "Pasteur",
    "des Tilleuls", "du 8 Mai 1945", "de l'Église", "des Trois Cailloux", "Saint-Exupéry", "du Moulin",
    "de Verdun", "Émile Zola", "des Acacias", "du Stade", "de la Gare", "des Peupliers", "du Docteur Roux",
    "Gambetta", "Aristide Briand", "du Maréchal Foch", "Anatole France", "des Écoles", "de Kerbernard",
    "Sainte-Catherine", "de la Croix-Rousse", "des Chartrons", "du Port", "de Brest", "Pierre Loti",
    "des Mimosas", "de la Fontaine", "Louis Pasteur", "Jean Moulin", "du Château d'Eau", "de Tréguier",
)  # fmt: skip
_TOWNS = (
    ("29000", "Quimper"), ("35000", "Rennes"), ("64100", "Bayonne"), ("69003", "Lyon"),
    ("13005", "Marseille"), ("33000", "Bordeaux"), ("85000", "La Roche-sur-Yon"),
    ("43000", "Le Puy-en-Velay"),
    ("59491", "Villeneuve-d'Ascq"), ("64500", "Saint-Jean-de-Luz"), ("22300", "Lannion"),
    ("92100", "Boulogne-Billancourt"), ("38000", "Grenoble"), ("20000", "Ajaccio"), ("20200", "Bastia"),
    ("97400", "Saint-Denis"), ("76600", "Le Havre"), ("13100", "Aix-en-Provence"), ("06000", "Nice"),
    ("31000", "Toulouse"), ("44000", "Nantes"), ("67000", "Strasbourg"), ("59000", "Lille"),
    ("21000", "Dijon"), ("87000", "Limoges"), ("34000", "Montpellier"), ("72000", "Le Mans"),
    ("14000", "Caen"), ("51100", "Reims"), ("29200", "Brest"), ("01000", "Bourg-en-Bresse"),
    ("94000", "Créteil"), ("75014", "Paris"), ("68100", "Mulhouse"), ("17000", "La Rochelle"),
    ("40000", "Mont de Marsan"), ("04000", "Digne les Bains"), ("73000", "Chambéry"), ("56100", "Lorient"),
)  # fmt: skip
_HOSPITALS = (  # name, number, street, postcode, town, mail domain
    ("CHU de Rennes – Hôpital Pontchaillou", "2", "rue Henri Le Guilloux", "35033", "Rennes",
     "chu-rennes.fr"),
    ("Centre Hospitalier de Cornouaille", "14 bis", "avenue Yves Thépot", "29107", "Quimper",
     "ch-cornouaille.fr"),
    ("Hôpital Édouard Herriot – Hospices Civils de Lyon", "5", "place d'Arsonval", "69437", "Lyon",
     "chu-lyon.fr"),
    ("CHU de Bordeaux – Hôpital Pellegrin", "1", "place Amélie Raba-Léon", "33076", "Bordeaux",
     "chu-bordeaux.fr"),
    ("Centre Hospitalier de la Côte Basque", "13", "avenue de l'Interne Jacques Loëb", "64109", "Bayonne",
     "ch-cotebasque.fr"),
    ("Clinique Saint-Martin", "18", "rue des Roses", "14050", "Caen", "clinique-saint-martin.fr"),
    ("Hôpital Saint-Louis (AP-HP)", "1", "avenue Claude Vellefaux", "75010", "Paris", "aphp.fr"),
    ("Centre Hospitalier de Bastia", "120", "route Impériale", "20604", "Bastia", "ch-bastia.fr"),
)  # fmt: skip
_MAIL_DOMAINS = (
    "orange.fr",
    "gmail.com",
    "free.fr",
    "laposte.net",
    "wanadoo.fr",
    "hotmail.fr",
    "sfr.fr",
    "yahoo.fr",
)
_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre")  # fmt: skip
_DATE_STYLES = ("d/m/Y", "d/m/Y", "d/m/Y", "d/m/y", "d.m.Y", "Y-m-d", "text", "text", "d-m-Y", "dd/mm/Y")
_ASCII = str.maketrans("éèêëàâäîïôöùûüçÉÈÊÀÂÎÔÇñãœæ", "eeeeaaaiioouuucEEEAAIOCnaoa")


def _ascii(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "", text.translate(_ASCII).lower().replace(" ", "-").replace("'", ""))


# The notes' writer ------------------------------------------------------------------------------

Segments = list[tuple[str | None, str]]


@dataclass
class _Person:
    sex: str  # "F" or "M"
    first: str
    last: str  # as written in mixed case: "Le Bihan", "de Lestrange", "Kerhervé"

    @property
    def upper(self) -> str:
        return self.last.upper()

    @property
    def initial(self) -> str:
        return "-".join(part[0] + "." for part in self.first.split("-"))


class _Note:
    """One note's people, places, numbers and dates, and the writer of its placeholders."""

    def __init__(self, rng: random.Random, kind: str) -> None:
        self.rng = rng
        self.kind = kind
        self.upper_surnames = rng.random() < 0.6
        self.date_style = rng.choice(_DATE_STYLES)
        child = kind == "pediatrie"
        self.patient = self._person(rng.choice("FM"))
        today = date(2018, 1, 1) + timedelta(days=rng.randint(0, 2700))
        age = rng.randint(2, 15) if child else rng.randint(19, 96)
        self.birth = today - timedelta(days=age * 365 + rng.randint(0, 364))
        self.age = (today - self.birth).days // 365
        self.today = today
        self.adm = today - timedelta(days=rng.randint(2, 20))
        self.maiden = (
            self._person("F") if self.patient.sex == "F" and not child and rng.random() < 0.5 else None
        )
        rel_sex = rng.choice("FM")
        self.relative = self._person(rel_sex)
        if rng.random() < 0.5:
            self.relative.last = self.patient.last
        if child:
            self.relation = "sa mère" if rel_sex == "F" else "son père"
            self.relative.last = self.patient.last
        elif rel_sex == "F":
            self.relation = rng.choice(
                ("sa fille", "son épouse", "sa sœur", "sa compagne", "sa nièce", "sa mère")
            )
        else:
            self.relation = rng.choice(
                ("son fils", "son mari", "son frère", "son compagnon", "son neveu", "son père")
            )
        self.doctors = [self._person(rng.choice("FM")) for _ in range(4)]
        self.nurse = self._person(rng.choice("FFM"))
        self.colleague = self._person(rng.choice("FFM"))  # named once, without any context
        self.hospital = rng.choice(_HOSPITALS)
        self.home_street = self._street()
        self.home_town = rng.choice(_TOWNS)
        self.gp_street = self._street()
        self.gp_town = rng.choice(_TOWNS)
        self.cache: dict[str, Segments] = {}

    # people

    def _person(self, sex: str) -> _Person:
        rng = self.rng
        held = rng.random() < HELD_OUT_SHARE
        if sex == "F":
            first = rng.choice(HELD_OUT_FIRST_F if held else KNOWN_FIRST_F)
        else:
            first = rng.choice(HELD_OUT_FIRST_M if held else KNOWN_FIRST_M)
        last = rng.choice(HELD_OUT_SURNAMES if rng.random() < HELD_OUT_SHARE else KNOWN_SURNAMES)
        return _Person(sex, first, last)

    def surname(self, p: _Person) -> str:
        return p.upper if self.upper_surnames else p.last

    def civ(self, p: _Person) -> str:
        if p.sex == "M":
            return self.rng.choice(("M.", "M.", "Monsieur", "Mr"))
        return self.rng.choice(("Mme", "Mme", "Madame", "MME"))

    def full(self, p: _Person, order: str = "") -> str:
        order = order or self.rng.choice(("fl", "fl", "lf", "fL"))
        if order == "lf":
            return f"{self.surname(p)} {p.first}"
        if order == "fL":
            return f"{p.first} {p.last}"
        return f"{p.first} {self.surname(p)}"

    def doctor(self, p: _Person, signature: bool = False) -> Segments:
        rng = self.rng
        title = rng.choice(("Dr", "Dr", "Dr.", "Docteur", "Pr")) + " "
        if signature:
            name = rng.choice(
                (f"{p.first} {self.surname(p)}", f"{p.first} {p.upper}", f"{p.initial} {p.last}")
            )
        else:
            name = rng.choice(
                (p.last, self.surname(p), f"{p.initial} {p.last}", f"{p.first} {self.surname(p)}", p.upper)
            )
        return [(None, title), ("NAME", name)]

    # values

    def date(self, d: date, style: str = "") -> str:
        style = style or (self.date_style if self.rng.random() < 0.75 else self.rng.choice(_DATE_STYLES))
        if style == "text":
            day = "1er" if d.day == 1 else str(d.day)
            return f"{day} {_MONTHS[d.month - 1]} {d.year}"
        if style == "d/m/y":
            return f"{d:%d/%m/%y}"
        if style == "d.m.Y":
            return f"{d:%d.%m.%Y}"
        if style == "Y-m-d":
            return d.isoformat()
        if style == "d-m-Y":
            return f"{d:%d-%m-%Y}"
        if style == "dd/mm/Y":
            return f"{d.day}/{d.month}/{d.year}"
        return f"{d:%d/%m/%Y}"

    def phone(self, mobile: bool) -> str:
        rng = self.rng
        lead = rng.choice("67") if mobile else rng.choice("12345")
        pairs = [f"{rng.randint(0, 99):02d}" for _ in range(4)]
        style = rng.randrange(7)
        if style == 0:
            return f"0{lead}{''.join(pairs)}"
        if style == 1:
            return f"0{lead}." + ".".join(pairs)
        if style == 2:
            return f"+33 {lead} " + " ".join(pairs)
        if style == 3:
            return f"+33 (0){lead} " + " ".join(pairs)
        if style == 4:
            return f"0{lead}-" + "-".join(pairs)
        return f"0{lead} " + " ".join(pairs)

    def street(self, s: tuple[str, str, str]) -> str:
        number, kind, name = s
        return f"{number}, {kind} {name}" if self.rng.random() < 0.15 else f"{number} {kind} {name}"

    def _street(self) -> tuple[str, str, str]:
        rng = self.rng
        number = str(rng.randint(1, 240)) + rng.choice(("", "", "", "", " bis", " ter", "bis", "B"))
        return number, rng.choice(_STREET_TYPES), rng.choice(_STREET_NAMES)

    def town(self, t: tuple[str, str], cedex: bool = False) -> str:
        code, name = t
        name = name.upper() if self.rng.random() < 0.3 else name
        suffix = self.rng.choice((" CEDEX", " Cedex 9", " CEDEX 01")) if cedex else ""
        return f"{code} {name}{suffix}"

    def nir(self) -> str:
        rng = self.rng
        sex = "2" if self.patient.sex == "F" else "1"
        dep = (
            rng.choice(("2A", "2B"))
            if rng.random() < 0.1
            else f"{rng.choice((1, 13, 22, 29, 35, 59, 69, 75)):02d}"
        )
        body = f"{sex}{self.birth.year % 100:02d}{self.birth.month:02d}{dep}{rng.randint(1, 999):03d}"
        body += f"{rng.randint(1, 999):03d}"
        key = nir_key(body.replace("2A", "19").replace("2B", "18"))
        if rng.random() < 0.5:
            return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"
        return f"{body}{key:02d}"

    def email(self, p: _Person, domain: str = "") -> str:
        domain = domain or self.rng.choice(_MAIL_DOMAINS)
        style = self.rng.randrange(3)
        if style == 0:
            local = f"{_ascii(p.first)}.{_ascii(p.last)}"
        elif style == 1:
            local = f"{_ascii(p.first)[0]}{_ascii(p.last)}{self.rng.randint(1, 99)}"
        else:
            local = f"{_ascii(p.last)}.{_ascii(p.first)}"
        return f"{local}@{domain}"

    # placeholders: each returns the segments that replace "{key}" in a template

    def value(self, key: str) -> Segments:
        if key in self.cache:
            return self.cache[key]
        segments = _PLACEHOLDERS[key](self)
        if key in _FIXED:
            self.cache[key] = segments
        return segments


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _pt_ref(n: _Note) -> Segments:
    p = n.patient
    form = n.rng.randrange(5)
    if form == 0:
        return [(None, "la patiente" if p.sex == "F" else "le patient")]
    name = f"{p.first} {n.surname(p)}" if form == 1 else n.surname(p) if form < 4 else p.last
    return [(None, n.civ(p) + " "), ("NAME", name)]


def _rel_intro(n: _Note) -> Segments:
    r = n.relative
    form = n.rng.randrange(3)
    if form == 0:
        return [(None, f"{n.relation} "), ("NAME", r.first)]
    if form == 1:
        return [(None, f"{n.relation}, {n.civ(r)} "), ("NAME", n.full(r, "fl"))]
    return [(None, f"{n.relation} "), ("NAME", f"{r.first} {n.surname(r)}")]


def _ipp(n: _Note) -> Segments:
    rng = n.rng
    value = rng.choice((f"{rng.randint(0, 9):02d}{_digits(rng, 8)}", _digits(rng, 8), f"8{_digits(rng, 8)}"))
    label = rng.choice(("IPP : ", "IPP ", "IPP n° ", "N° patient : ", "NIP : ", "IPP: "))
    return [(None, label), ("IPP", value)]


def _nda(n: _Note) -> Segments:
    rng = n.rng
    year = n.today.year % 100
    value = rng.choice((f"{year}{_digits(rng, 8)}", f"{year}{_digits(rng, 6)}", f"V{year}-{_digits(rng, 6)}"))
    label = rng.choice(("NDA : ", "N° de séjour : ", "N° séjour ", "n° de venue : ", "Venue n° ", "NDA "))
    return [(None, label), ("ID", value)]


def _acc(n: _Note) -> Segments:
    rng = n.rng
    value = rng.choice((f"CT{n.today:%y%m%d}{_digits(rng, 4)}", f"{n.today:%y}RX{_digits(rng, 6)}",
                        f"{_digits(rng, 10)}"))  # fmt: skip
    label = rng.choice(("N° d'examen : ", "Accession : ", "N° accession ", "Examen n° "))
    return [(None, label), ("ID", value)]


def _rpps(n: _Note) -> Segments:
    label = n.rng.choice(("RPPS ", "RPPS : ", "n° RPPS "))
    return [(None, label), ("ID", f"10{_digits(n.rng, 9)}")]


def _doc(i: int, signature: bool = False) -> Callable[[_Note], Segments]:
    return lambda n: n.doctor(n.doctors[i], signature)


def _date(attr: str, days: int = 0) -> Callable[[_Note], Segments]:
    return lambda n: [("DATE", n.date(getattr(n, attr) + timedelta(days=days)))]


def _no_year(n: _Note) -> Segments:
    d = n.adm + timedelta(days=n.rng.randint(0, 3))
    day = "1er" if d.day == 1 else str(d.day)
    return [("DATE", f"{day} {_MONTHS[d.month - 1]}")]


_PLACEHOLDERS: dict[str, Callable[[_Note], Segments]] = {
    "hosp": lambda n: [(None, n.hospital[0])],
    "hosp_addr": lambda n: [("ADDRESS", f"{n.hospital[1]} {n.hospital[2]}")],
    "hosp_town": lambda n: [
        ("ADDRESS", f"{n.hospital[3]} {n.hospital[4]}{n.rng.choice(('', ' CEDEX', ' Cedex'))}")
    ],
    "svc_tel": lambda n: [("PHONE", n.phone(False))],
    "svc_fax": lambda n: [("PHONE", n.phone(False))],
    "svc_mail": lambda n: [("EMAIL", f"secretariat.{n.kind.split('_')[0]}@{n.hospital[5]}")],
    "pt_full": lambda n: [("NAME", n.full(n.patient))],
    "pt_lf": lambda n: [("NAME", n.full(n.patient, "lf"))],
    "pt_fl": lambda n: [("NAME", n.full(n.patient, "fl"))],
    "pt_ref": _pt_ref,
    "pt_civ_name": lambda n: [(None, n.civ(n.patient) + " "), ("NAME", n.surname(n.patient))],
    "pt_last": lambda n: [("NAME", n.surname(n.patient))],
    "pt_upper": lambda n: [("NAME", n.patient.upper)],
    "pt_first": lambda n: [("NAME", n.patient.first)],
    "pt_maiden": lambda n: [(None, ", née "), ("NAME", n.surname(n.maiden))] if n.maiden else [],
    "ne": lambda n: [(None, "née" if n.patient.sex == "F" else "né")],
    "e": lambda n: [(None, "e" if n.patient.sex == "F" else "")],
    "il": lambda n: [(None, "elle" if n.patient.sex == "F" else "il")],
    "Il": lambda n: [(None, "Elle" if n.patient.sex == "F" else "Il")],
    "le_pt": lambda n: [(None, "la patiente" if n.patient.sex == "F" else "le patient")],
    "Le_pt": lambda n: [(None, "La patiente" if n.patient.sex == "F" else "Le patient")],
    "age": lambda n: [(None, str(n.age))],
    "pt_birth": lambda n: [("DATE", n.date(n.birth))],
    "pt_addr": lambda n: [("ADDRESS", n.street(n.home_street))],
    "pt_town": lambda n: [("ADDRESS", n.town(n.home_town))],
    "pt_tel": lambda n: [("PHONE", n.phone(True))],
    "pt_tel2": lambda n: [("PHONE", n.phone(False))],
    "pt_mail": lambda n: [("EMAIL", n.email(n.patient))],
    "nir": lambda n: [("NIR", n.nir())],
    "ipp": _ipp,
    "nda": _nda,
    "acc": _acc,
    "rpps": _rpps,
    "adeli": lambda n: [(None, "ADELI "), ("ID", f"{n.rng.choice((29, 35, 69, 75))}{_digits(n.rng, 7)}")],
    "rel_intro": _rel_intro,
    "rel_name": lambda n: [("NAME", n.relative.first)],
    "rel_full": lambda n: [(None, n.civ(n.relative) + " "), ("NAME", n.full(n.relative, "fl"))],
    "rel_tel": lambda n: [("PHONE", n.phone(True))],
    "relation": lambda n: [(None, n.relation)],
    "dr1": _doc(0),
    "dr1_sig": _doc(0, signature=True),
    "dr1_mail": lambda n: [("EMAIL", n.email(n.doctors[0], n.hospital[5]))],
    "dr2": _doc(1),
    "dr2_sig": _doc(1, signature=True),
    "dr2_addr": lambda n: [("ADDRESS", n.street(n.gp_street))],
    "dr2_town": lambda n: [("ADDRESS", n.town(n.gp_town))],
    "dr2_tel": lambda n: [("PHONE", n.phone(False))],
    "dr2_mail": lambda n: [("EMAIL", n.email(n.doctors[1], "medecin.mssante.fr"))],
    "dr3": _doc(2),
    "dr4": _doc(3),
    "dr4_plain": lambda n: [("NAME", f"{n.doctors[3].first} {n.doctors[3].last}")],
    "nurse2_plain": lambda n: [("NAME", f"{n.colleague.first} {n.colleague.last}")],
    "interne": lambda n: [("NAME", n.full(n.doctors[3], n.rng.choice(("fl", "fL"))))],
    "nurse": lambda n: [("NAME", n.full(n.nurse, n.rng.choice(("fl", "fL", "lf"))))],
    "nurse_first": lambda n: [("NAME", n.nurse.first)],
    "d_today": _date("today"),
    "d_adm": _date("adm"),
    "d_adm1": _date("adm", 1),
    "d_bio": _date("today", -5),
    "d_next": lambda n: [("DATE", n.date(n.today + timedelta(days=n.rng.randint(20, 120))))],
    "d_prev": lambda n: [("DATE", n.date(n.today - timedelta(days=n.rng.randint(200, 2000))))],
    "d_noyear": _no_year,
    "year_prev": lambda n: [(None, str(n.today.year - n.rng.randint(1, 8)))],
    "room": lambda n: [(None, f"{n.rng.randint(1, 6)}{n.rng.randint(1, 40):02d}")],
}
_FIXED = {
    "hosp_addr", "hosp_town", "svc_tel", "svc_fax", "svc_mail", "pt_birth", "pt_addr", "pt_town",
    "pt_tel", "pt_tel2", "pt_mail", "nir", "ipp", "nda", "acc", "dr1_mail", "dr2_addr", "dr2_town",
    "dr2_tel", "dr2_mail", "d_today", "d_adm", "d_bio", "d_next", "d_prev", "year_prev", "rel_tel",
    "room", "pt_maiden", "rpps", "adeli",
}  # fmt: skip

# Templates ---------------------------------------------------------------------------------------
# Written for this module. "{key}" is a placeholder of _PLACEHOLDERS.

TEMPLATES: dict[str, str] = {}

TEMPLATES["consultation_cardio"] = """\
{hosp}
Service de Cardiologie – {hosp_addr}, {hosp_town}
Secrétariat : {svc_tel} – Fax : {svc_fax}

COMPTE RENDU DE CONSULTATION
Date de consultation : {d_today}
Patient : {pt_lf}{pt_maiden}, {ne} le {pt_birth} ({age} ans)
{ipp}    {nda}
Médecin traitant : {dr2}

Cher confrère,

J'ai revu en consultation {pt_ref}, {age} ans, pour le suivi d'une cardiopathie ischémique. \
{Il} a présenté un syndrome coronarien aigu en {year_prev}, traité par angioplastie de l'IVA \
avec pose d'un stent actif.

Antécédents : HTA, dyslipidémie, tabagisme sevré (30 PA). Appendicectomie.
Traitement actuel : Kardégic 75 mg 1/j, bisoprolol 2,5 mg 1/j, atorvastatine 40 mg 1/j, \
ramipril 5 mg 1/j.

Examen clinique : TA 135/80 mmHg, FC 62/min, poids 78 kg. Auscultation cardiaque normale, \
pas de souffle. Absence d'œdème des membres inférieurs.
ECG : rythme sinusal à 60/min, pas de trouble de la repolarisation.
Biologie du {d_bio} : LDL-cholestérol 0,68 g/L, HbA1c 5,9 %, créatininémie 82 µmol/L \
(DFG 84 mL/min/1,73 m²).

Échocardiographie transthoracique : FEVG 55 %, hypokinésie inférieure séquellaire, pas de \
valvulopathie significative, VD non dilaté. Score de risque SCORE2 élevé. Classe NYHA I.

Conclusion : évolution favorable, pas de récidive angineuse (I25.1). Poursuite du traitement \
à l'identique, objectif LDL < 0,55 g/L. Vaccin PREVENAR 20 conseillé. Prochain contrôle le \
{d_next} avec épreuve d'effort ; à faire avant : bilan lipidique, ionogramme, créatinine.

Bien confraternellement,
{dr1_sig}
Cardiologue – {rpps}
"""

TEMPLATES["hospitalisation"] = """\
{hosp} – Médecine interne
COMPTE RENDU D'HOSPITALISATION

{Le_pt} : {pt_fl}
Date de naissance : {pt_birth}
{ipp} – {nda}
Hospitalisation du {d_adm} au {d_today}, chambre {room}.

Motif : altération de l'état général et fièvre à 39 °C depuis 5 jours.

Histoire de la maladie : {pt_ref}, {age} ans, aux antécédents de diabète de type 2 (E11.9) et \
de maladie de Parkinson, est adressé{e} par {dr2} pour une fièvre persistante. \
{Il} vit à domicile avec {rel_intro} qui nous a apporté le dossier.

Examen à l'entrée : T 38,7 °C, TA 105/60 mmHg, FC 104/min, SpO2 95 % en air ambiant, \
Glasgow 15. Souffle systolique 2/6 au foyer mitral.

Biologie : CRP 187 mg/L, leucocytes 14,2 G/L, hémoglobine 11,4 g/dL, plaquettes 250 000/mm3. \
Hémocultures positives à Streptococcus gallolyticus le {d_noyear}.
ETT puis ETO : végétation mitrale de 8 mm, pas d'abcès.

Évolution : endocardite infectieuse traitée par amoxicilline 12 g/j IV puis relais. \
Apyrexie à J+3. Coloscopie programmée (recherche de lésion colique).

Traitement de sortie : amoxicilline 2 g x 3/j pendant 4 semaines, metformine 1000 mg x 2/j.
Dossier discuté avec {dr4_plain} de l'équipe mobile d'infectiologie. Signe de Murphy négatif, \
pas de signe de Lasègue. Avis du Centre Jean Perrin non nécessaire.
Rendez-vous de suivi le {d_next} avec {dr1}.

Pour tout renseignement : {svc_tel}.
{dr1_sig}, praticien hospitalier
Interne : {interne}
"""

TEMPLATES["urgences"] = """\
SERVICE D'ACCUEIL DES URGENCES – {hosp}
Passage du {d_today} à 03h42 – {nda}
Patient{e} : {pt_lf}, {ne} le {pt_birth}, {age} ans
Adresse : {pt_addr}, {pt_town}
Tél. : {pt_tel}
Personne à prévenir : {rel_full} ({relation}) – {rel_tel}

Motif de recours : douleur thoracique.
Mode d'arrivée : SMUR.

Anamnèse : douleur rétrosternale constrictive depuis 2 h, irradiant dans le bras gauche, \
chez {le_pt} aux antécédents d'HTA et de tabagisme actif (20 PA).
Examen : TA 160/95 mmHg, FC 98/min, EVA 7/10, auscultation pulmonaire libre.
ECG : sus-décalage du segment ST en territoire inférieur (DII, DIII, aVF).
Troponine Hs 1250 ng/L.

Diagnostic : SCA ST+ inférieur (I21.1).
Prise en charge : aspirine 250 mg IV, héparine 5000 UI IV, morphine titrée 3 mg. \
Appel du cardiologue de garde, {dr3}, transfert en salle de coronarographie.
Coronarographie : occlusion de la coronaire droite moyenne, angioplastie avec 1 stent actif. \
Flux TIMI 3 en fin de procédure. Surveillance en USIC, box 4. Sortie de l'USIC prévue à J+2.
Famille prévenue par téléphone : {rel_intro}.

Urgentiste : {dr1_sig}
IDE : {nurse}
"""

TEMPLATES["lettre_medecin_traitant"] = """\
{dr2_sig}
Médecine générale
{dr2_addr}
{dr2_town}
Tél : {dr2_tel} – {dr2_mail}

Le {d_today}

À l'attention de {dr1}
Service de Pneumologie, {hosp}

Cher confrère,

Je vous adresse {pt_ref}, {ne} le {pt_birth}, pour avis concernant une dyspnée d'effort \
d'aggravation progressive depuis trois mois, chez {le_pt} qui a arrêté de fumer il y a dix ans.

Antécédents : BPCO stade 2, asthme dans l'enfance, cholécystectomie en {year_prev}.
Traitement : Spiriva 2,5 µg 2 bouffées/j, Symbicort 200/6 1 inhalation x 2/j.
La spirométrie du {d_bio} montre un VEMS à 58 % de la théorique. La radiographie thoracique \
ne retrouve pas de foyer. Score mMRC à 2.

{Il} peut être joint{e} au {pt_tel}. {rel_intro} l'accompagnera à la consultation.

Un scanner thoracique récent (Clinique Saint-Pierre) retrouve un emphysème centrolobulaire \
sans nodule. Pas de pierre vésiculaire à l'échographie abdominale. Vaccinations à jour.

Je vous remercie de votre avis et reste à votre disposition.
Bien confraternellement,
{dr2_sig}
{rpps}
"""

TEMPLATES["ordonnance"] = """\
{dr1_sig}
Médecine interne – {hosp}
{hosp_addr} – {hosp_town}
{rpps} – {adeli}
Tél. {svc_tel}

ORDONNANCE
Le {d_today}

{pt_civ_name} {pt_first}
Né{e} le {pt_birth} – Poids : 64 kg

1) METFORMINE 1000 mg : 1 comprimé matin et soir au milieu des repas.
2) KARDEGIC 75 mg : 1 sachet par jour à midi.
3) DOLIPRANE 1000 mg : 1 comprimé jusqu'à 3 fois par jour si douleur (max 3 g/24h).
4) LOVENOX 4000 UI/0,4 mL : 1 injection sous-cutanée par jour pendant 10 jours.
5) Soins infirmiers à domicile pour l'injection, dimanches et jours fériés compris.

6) Bas de contention classe 2, 1 paire.

Traitement pour 3 mois, à renouveler 2 fois. Ne pas substituer (allergie à l'excipient).
Contrôle HbA1c et créatininémie avant le {d_next}.
"""

TEMPLATES["cr_operatoire"] = """\
COMPTE RENDU OPÉRATOIRE
{hosp} – Bloc opératoire central, salle 4

Opéré{e} : {pt_lf} – {ipp} – {ne} le {pt_birth}
Date de l'intervention : {d_today}
Opérateur : {dr1}
Aide opératoire : {interne}
Anesthésiste : {dr3}
IBODE : {nurse}

Indication : cholécystite aiguë lithiasique (K80.0), calcul (pierre) de 18 mm enclavé \
dans le collet vésiculaire à l'échographie du {d_adm}.
Intervention : cholécystectomie par cœlioscopie.

Installation en décubitus dorsal, jambes écartées. Open cœlioscopie ombilicale, \
pneumopéritoine à 12 mmHg, 3 trocarts de 5 mm. Vésicule inflammatoire, paroi épaissie. \
Dissection du triangle de Calot, cholangiographie peropératoire normale. Clips sur le canal \
cystique et l'artère cystique. Hémostase au crochet. Extraction dans un sac. \
Pas de drainage. Fermeture aponévrotique au Vicryl 0.

Durée : 55 minutes. Pertes sanguines minimes.
Suites : reprise alimentaire à J1, sortie prévue à J+2. Antalgiques de palier 1, \
Lovenox 4000 UI/j pendant 10 jours. Consultation de contrôle le {d_next}.
Compte rendu anatomopathologique à récupérer (Laboratoire Cerba).

{dr1_sig}
"""

TEMPLATES["radiologie"] = """\
IMAGERIE MÉDICALE – {hosp}
{hosp_addr}, {hosp_town} – Tél. {svc_tel}

{pt_lf}, {ne} le {pt_birth}
{ipp} – {acc}
Prescripteur : {dr2}
Examen réalisé le {d_today}

SCANNER THORACO-ABDOMINO-PELVIEN AVEC INJECTION

Indication : bilan d'extension d'un adénocarcinome colique sigmoïdien (C18.7).
Technique : acquisition hélicoïdale après injection de 90 mL d'Omnipaque 350. \
PDL 845 mGy.cm.

Résultats :
- Épaississement pariétal circonférentiel du sigmoïde sur 4 cm.
- Deux nodules hépatiques hypodenses des segments IV et VII, de 12 et 18 mm, suspects.
- Pas d'adénomégalie médiastinale. Pas de nodule pulmonaire. Pas d'épanchement.
- Rein droit : kyste simple de 15 mm (Bosniak I).

Appareil : IRM Siemens Avanto 1,5 T pour le complément hépatique.

Conclusion : lésion sigmoïdienne connue ; deux lésions hépatiques évocatrices de métastases. \
Comparaison au scanner du {d_prev}. Dossier présenté en RCP le {d_next}.

Compte rendu validé par {dr1_sig}, radiologue.
"""

TEMPLATES["biologie"] = """\
LABORATOIRE DE BIOLOGIE MÉDICALE – {hosp}
{hosp_addr} {hosp_town}
Biologiste responsable : {dr1}

Patient : {pt_upper} {pt_first}
Nom de naissance : {pt_last}
Né{e} le : {pt_birth}      Sexe : {sexe}
{ipp}
N° de demande : {d_today_id}
Prélevé le {d_today} à 07h15 – Prescripteur : {dr2}

HÉMATOLOGIE
Hémoglobine .............. 10,9 g/dL      (12,0 – 16,0)
Leucocytes ............... 7,8 G/L        (4,0 – 10,0)
Plaquettes ............... 312 G/L        (150 – 400)
VGM ...................... 78 fL          (80 – 100)

BIOCHIMIE
Sodium ................... 138 mmol/L     (136 – 145)
Potassium ................ 4,1 mmol/L     (3,5 – 5,1)
Créatinine ............... 96 µmol/L      (45 – 90)
DFG (CKD-EPI) ............ 58 mL/min/1,73 m²
Ferritine ................ 9 µg/L         (15 – 150)
TSH ...................... 2,35 mUI/L     (0,27 – 4,20)
INR ...................... 2,6 (cible 2-3, sous AVK)
CRP ...................... < 4 mg/L

SÉROLOGIES
Brucellose (Rose Bengale) . négative
VIH 1/2 (Ag p24 + Ac) .... négatif
Hépatite B (Ag HBs) ...... négatif

Commentaire : anémie microcytaire ferriprive. Résultats transmis par téléphone au service \
le {d_today}.
Validé par {dr1_sig}
"""

TEMPLATES["lettre_sortie"] = """\
LETTRE DE LIAISON À LA SORTIE
{hosp} – Service de Gériatrie
Secrétariat : {svc_tel} – {svc_mail}

Destinataire : {dr2}, {dr2_addr}, {dr2_town}
Copie à : {rel_full}

{Le_pt} : {pt_fl}{pt_maiden}
{ne} le {pt_birth} – NIR : {nir}
Domicile : {pt_addr} – {pt_town}
{nda}
Entrée le {d_adm}, sortie le {d_today}.

Motif : chute à domicile avec station au sol prolongée.
Diagnostics : rhabdomyolyse (CPK 4500 UI/L), déshydratation, troubles cognitifs débutants \
(MMSE 22/30).

Au cours du séjour : réhydratation, bilan de chute, kinésithérapie. Pas de fracture. \
Réévaluation par l'équipe mobile de gériatrie le {d_noyear}.

Traitement de sortie : Doliprane 1 g x 3/j si douleur, cholécalciférol 100 000 UI \
tous les 3 mois, arrêt du zopiclone.

Examens en attente : vitamine B12, folates, IRM cérébrale prévue le {d_next}.
Mode de sortie : retour à domicile avec passage IDE 2 fois par jour et portage des repas. \
{rel_intro} est informé{e} du retour (tél. {rel_tel}).
Rendez-vous en consultation mémoire le {d_next}.

{dr1_sig}
"""

TEMPLATES["note_infirmiere"] = """\
TRANSMISSIONS CIBLÉES – Unité de soins 3B, chambre {room}
{pt_ref} – {ipp}

{d_today} – 07h10
Cible : douleur
D : se plaint d'une douleur abdominale EVA 6/10, faciès crispé.
A : paracétamol 1 g PO administré selon prescription de {dr1}.
R : EVA 2/10 à 08h00.

{d_today} – 14h30
Cible : élimination
D : pas de selles depuis J-3, abdomen souple.
A : Movicol 1 sachet, hydratation 1,5 L/j encouragée.
R : à réévaluer.

{d_today} – 21h15
Cible : relation / famille
D : visite de {rel_intro}, inquiet{e} pour le retour à domicile.
A : entretien, coordonnées laissées ({rel_tel}).
R : rendez-vous avec l'assistante sociale demain.

Nuit : sommeil correct, pas de chute. Barrières relevées à la demande du patient. \
Score de Braden 14, effleurage des points d'appui. Relève faite à {nurse2_plain}.

IDE : {nurse}
Aide-soignante : {nurse_first}
"""

TEMPLATES["consultation_anesthesie"] = """\
CONSULTATION PRÉ-ANESTHÉSIQUE
{hosp} – Département d'anesthésie-réanimation
Date : {d_today}     Anesthésiste : {dr3}

Patient{e} : {pt_fl}, {age} ans, {ne} le {pt_birth}
{ipp}
Intervention prévue le {d_next} : prothèse totale de hanche droite, opérateur {dr1}.

Antécédents : HTA, SAOS appareillé (PPC), allergie à la pénicilline (urticaire).
Traitements : amlodipine 5 mg/j, Xarelto 20 mg/j (arrêt 3 jours avant l'intervention).
Examen : poids 92 kg, taille 1,70 m, IMC 31,8 kg/m². Mallampati 3, ouverture de bouche > 3 cm. \
TA 145/85 mmHg.
Score ASA 3. Score de Lee 1.

Biologie du {d_bio} : Hb 13,8 g/dL, plaquettes 210 G/L, TP 95 %, TCA 1,02, \
créatinine 88 µmol/L.

Proposition : rachianesthésie, antibioprophylaxie par clindamycine 900 mg IV.
Information donnée au patient et à {rel_intro} ; consentement signé.
Jeûne : 6 h pour les solides, 2 h pour les liquides clairs. Douche à la Bétadine la veille \
et le matin. Arrêt du Xarelto le {d_noyear} au soir.

{dr3}
"""

TEMPLATES["note_sociale"] = """\
NOTE DE L'ASSISTANTE SOCIALE – {hosp}
Le {d_today}

Situation de {pt_civ_name} ({pt_fl}), {age} ans, {ne} le {pt_birth}.
Adresse : {pt_addr}, {pt_town}
Téléphone : {pt_tel} / {pt_tel2} – courriel : {pt_mail}
N° de sécurité sociale : {nir}

Entretien ce jour avec {le_pt} et {rel_intro}. {Il} vit seul{e} au 3e étage sans ascenseur. \
{rel_name} passe deux fois par semaine et souhaite une aide à domicile.
Personne de confiance désignée : {rel_full}, joignable au {rel_tel}.

Démarches : dossier APA déposé, demande de portage de repas, dossier MDPH en cours. \
Mutuelle à jour. Rendez-vous avec le CCAS le {d_next}.
Une entrée en EHPAD n'est pas souhaitée par {le_pt}. Grille AGGIR : GIR 4.
Revenus : pension de retraite, pas d'aide sociale. Logement : locataire, bailleur social.
Suivi par le CMP Pierre Janet pour un syndrome dépressif ancien.

Assistante sociale : {nurse} – poste 4521
"""

TEMPLATES["anapath"] = """\
ANATOMIE ET CYTOLOGIE PATHOLOGIQUES – {hosp}
{hosp_addr}, {hosp_town}

Patient : {pt_lf}      Né{e} le : {pt_birth}
{ipp}      {acc}
Préleveur : {dr2}
Prélèvement reçu le {d_today}, fixé au formol.

Renseignements cliniques : nodule du sein gauche de 14 mm, ACR 5.

Macroscopie : 3 carottes biopsiques de 12 à 15 mm, blanchâtres.

Microscopie : prolifération carcinomateuse infiltrante d'architecture tubulo-trabéculaire, \
de grade histopronostique SBR II (3+2+1). Pas d'embole vasculaire visible. \
Absence de composante in situ.

Immunohistochimie : RE 90 %, RP 60 %, HER2 score 1+, Ki-67 15 %.

Conclusion : carcinome infiltrant de type non spécifique (C50.4), grade II, RH+, HER2 négatif.
Dossier présenté à la RCP de sénologie du {d_next}.
Technique : coloration HES, immunohistochimie sur automate Ventana (anticorps SP1, 1E2, 4B5). \
Contrôles positifs et négatifs satisfaisants.

Compte rendu validé le {d_today} par {dr1_sig}, pathologiste ({rpps}).
"""

TEMPLATES["endoscopie"] = """\
COMPTE RENDU D'ENDOSCOPIE DIGESTIVE
Unité d'endoscopie – {hosp}
{pt_ref} – {pt_lf}, {age} ans – {ipp}
Date : {d_today} – {nda}
Endoscopiste : {dr1}     Anesthésie : {dr3}
Indication : anémie ferriprive, recherche de saignement occulte.

Gastroscopie : œsophage normal. Estomac : gastrite érythémateuse antrale, biopsies (Sydney). \
Duodénum normal.
Coloscopie : préparation satisfaisante (Boston 8/9). Polype sessile de 12 mm du côlon droit \
(Paris 0-Is), réséqué à l'anse diathermique, récupéré. Diverticulose sigmoïdienne. \
Pas de lésion hémorragique.

Conclusion : polypectomie colique droite, gastrite antrale.
Résultats histologiques et rendez-vous de consultation le {d_next}.
Contrôle endoscopique à 3 ans. Reprise du Kardégic à J+5 si pas de saignement.
Classification de Forrest non applicable. Pas de varice œsophagienne (score de Child-Pugh A).

{dr1_sig}
{dr1_mail}
"""

TEMPLATES["certificat"] = """\
{dr1_sig}
{hosp}
{hosp_addr}
{hosp_town}
{rpps}

CERTIFICAT MÉDICAL

Je soussigné{e_dr} {dr1}, certifie avoir examiné ce jour {pt_ref}, {ne} le {pt_birth}, \
demeurant {pt_addr}, {pt_town}.

{Il} présente une entorse grave de la cheville droite (S93.4) survenue le {d_noyear}, \
nécessitant une immobilisation par attelle et une incapacité totale de travail de 21 jours, \
sauf complication.

Certificat établi à la demande de l'intéressé{e} et remis en main propre pour faire valoir \
ce que de droit.

Le présent certificat ne préjuge pas des séquelles éventuelles. Une radiographie de contrôle \
est prévue le {d_next} ; consultation en chirurgie orthopédique avec {dr2} si besoin.

Fait à {hosp_city}, le {d_today}.
{dr1_sig}
"""

TEMPLATES["pediatrie"] = """\
CONSULTATION DE PÉDIATRIE – {hosp}
Le {d_today}

Enfant : {pt_fl}, {ne} le {pt_birth} ({age} ans)
{ipp}
Accompagné{e} de {relation}, {rel_full} – tél. {rel_tel}
Médecin traitant : {dr2}

{pt_first} est vu{e} pour un asthme du nourrisson devenu asthme de l'enfant, avec trois \
exacerbations cet hiver dont une hospitalisation en décembre. Pas de tabagisme passif. \
Eczéma atopique dans l'enfance. Les parents décrivent une toux nocturne.

Examen : poids 22 kg (P50), taille 118 cm (P50), FR 22/min, SpO2 98 %, quelques sibilants \
bilatéraux. Peau : plaques rosées de la face interne des coudes.
DEP 180 L/min (70 % de la théorique). Score ACT 17.

Conclusion : asthme partiellement contrôlé. Fluticasone 50 µg 2 bouffées x 2/j avec chambre \
d'inhalation, Ventoline si besoin. Plan d'action écrit remis. Éviction des acariens. \
Vaccinations à jour (carnet de santé vérifié, ROR 2 doses). PAI à établir avec l'école \
Jules Ferry. {pt_first} reviendra le {d_next}. Courrier adressé à {dr2}.

{dr1_sig}, pédiatre
"""

_PLACEHOLDERS.update(
    {
        "d_today_id": lambda n: [("ID", f"{n.today:%y%m%d}{_digits(n.rng, 4)}")],
        "e_dr": lambda n: [(None, "e" if n.doctors[0].sex == "F" else "")],
        "hosp_city": lambda n: [(None, n.hospital[4])],
        "sexe": lambda n: [(None, n.patient.sex)],
    }
)
_FIXED.update({"d_today_id"})
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _render(template: str, note: _Note) -> LabelledNote:
    parts: list[str] = []
    entities: list[Entity] = []
    pos = 0
    for i, piece in enumerate(_PLACEHOLDER.split(template)):
        segments: Segments = [(None, piece)] if i % 2 == 0 else note.value(piece)
        for kind, text in segments:
            if kind is not None:
                entities.append(Entity(kind, pos, pos + len(text)))
            parts.append(text)
            pos += len(text)
    return LabelledNote("".join(parts), tuple(entities), note.kind)


@dataclass
class Score:
    """Counts for one entity type: gold entities found (all characters covered by predicted spans
    of the type) or missed, predicted spans overlapping a gold entity of the type or not."""

    found: int = 0
    missed: int = 0
    true_spans: int = 0
    false_spans: int = 0

    @property
    def recall(self) -> float:
        return self.found / (self.found + self.missed) if self.found + self.missed else 1.0

    @property
    def precision(self) -> float:
        return (
            self.true_spans / (self.true_spans + self.false_spans)
            if self.true_spans + self.false_spans
            else 1.0
        )

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(
    notes: list[LabelledNote], find: Callable[[str], list[Entity]] = note_deid.find_entities
) -> dict[str, Score]:
    """Scores of ``find`` on ``notes`` per entity type, and overall under "ALL"."""
    scores = {t: Score() for t in (*note_deid.ENTITY_TYPES, "ALL")}
    for note in notes:
        predicted = find(note.text)
        covered: dict[str, bytearray] = {}
        for e in predicted:
            mask = covered.setdefault(e.type, bytearray(len(note.text)))
            mask[e.start : e.end] = b"\x01" * (e.end - e.start)
        for g in note.entities:
            mask = covered.get(g.type)
            hit = mask is not None and mask.find(0, g.start, g.end) < 0
            for key in (g.type, "ALL"):
                if hit:
                    scores[key].found += 1
                else:
                    scores[key].missed += 1
        for e in predicted:
            true = any(g.type == e.type and g.start < e.end and e.start < g.end for g in note.entities)
            for key in (e.type, "ALL"):
                if true:
                    scores[key].true_spans += 1
                else:
                    scores[key].false_spans += 1
    return scores


def labelled_notes(n: int, seed: int = 0) -> list[LabelledNote]:
    """``n`` labelled notes, the templates in turn; the same ``n`` and ``seed`` give the same notes."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"labelled-notes-{seed}")
    kinds = list(TEMPLATES)
    out: list[LabelledNote] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        out.append(_render(TEMPLATES[kind], _Note(rng, kind)))
    return out
