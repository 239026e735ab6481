"""Imaging for clinicians in the browser: find a patient, their studies newest first, a study's
series with a thumbnail each, a series' images one by one, and a link that opens the study in
the OHIF viewer when ``imaging.ohif_url`` is set.

A patient of the archive is (Patient ID, IssuerOfPatientID): each site issues its own
numbers (IPP), so one Patient ID may be two people of two sites; they are always listed,
opened and audited apart, the issuer shown next to the Patient ID ("unknown" for studies
without one). A patient is found by an identifier through the identity store
(``system|value``, or a bare value tried against the systems that identify a person across
sites, the INS by default; every identifier of the persons found, each site's IPP among them,
is then looked for as a DICOM Patient ID issued by that identifier's system, or by no known
issuer), or by a name or Patient ID through the archive's QIDO index (a bare Patient ID:
whoever issued it). Rejected (IOCM) instances, and series and studies left without any, are
never shown.

The browser holds a session cookie, not a bearer token, so the images have their own routes
under ``/imaging``; they read and render through the same functions as DICOMweb's rendered
images and thumbnails (``dicomweb_images``), with the same permission (``imaging:read``),
and every page and image names the studies and patients it showed in its audit event, as
DICOMweb does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.api.deps import audit_context, get_hub
from hdhub.api.pages import add_texts, language, render, say, signed_in
from hdhub.api.routes.dicomweb_images import first_image, image_response, instance_bytes
from hdhub.catalog.db import in_chunks
from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy
from hdhub.errors import NotFound, ValidationError
from hdhub.hub import Hub
from hdhub.imaging.dicom_json import integer_string
from hdhub.imaging.issuers import issuer_names
from hdhub.imaging.qido import parse_query, search
from hdhub.imaging.reach import reached
from hdhub.imaging.render import THUMBNAIL
from hdhub.imaging.store import UID_RE
from hdhub.security.principal import Principal

router = APIRouter(include_in_schema=False)
ACTION = "imaging:read"
MAX_QUERY = 200  # characters of a search field
MAX_PATIENTS = 100  # patients listed by a search
NAME_MATCHES = 1000  # studies a name or Patient ID search reads from the index
MAX_STUDIES = 500  # studies listed on a patient's page
CACHE = "private, max-age=600"  # images: this browser only, never a shared cache

add_texts({
    "img_find": {"fr": "Rechercher un patient", "en": "Find a patient"},
    "img_identifier": {"fr": "Identifiant du patient (IPP ou INS)", "en": "Patient identifier (IPP or INS)"},
    "img_identifier_hint": {
        "fr": "Un INS, un IPP, ou système|valeur (par exemple urn:oid:1.2.250.1.213.1.4.8|…).",
        "en": "An INS, an IPP, or system|value (for example urn:oid:1.2.250.1.213.1.4.8|…).",
    },
    "img_name": {"fr": "Nom ou identifiant DICOM", "en": "Name or DICOM Patient ID"},
    "img_name_hint": {
        "fr": "Début du nom, ou Nom Prénom ; * et ? acceptés.",
        "en": "Start of the name, or Family Given; * and ? allowed.",
    },
    "img_search": {"fr": "Rechercher", "en": "Search"},
    "img_patients": {"fr": "Patients trouvés", "en": "Patients found"},
    "img_none": {"fr": "Aucun patient avec des images ne correspond.",
                 "en": "No patient with images matches."},
    "img_more": {"fr": "Seuls les premiers résultats sont affichés : précisez la recherche.",
                 "en": "Only the first results are shown: narrow the search."},
    "img_too_long": {"fr": "Recherche trop longue.", "en": "Search too long."},
    "img_too_short": {"fr": "Au moins deux caractères du nom, hors * et ?.",
                      "en": "At least two characters of the name, besides * and ?."},
    "img_patient_id": {"fr": "Identifiant DICOM", "en": "DICOM Patient ID"},
    "img_issuer": {"fr": "Émetteur (site)", "en": "Issuer (site)"},
    "img_issuer_unknown": {"fr": "inconnu", "en": "unknown"},
    "img_patient_name": {"fr": "Nom", "en": "Name"},
    "img_birth": {"fr": "Naissance", "en": "Birth date"},
    "img_sex": {"fr": "Sexe", "en": "Sex"},
    "img_studies": {"fr": "Examens", "en": "Studies"},
    "img_last_study": {"fr": "Dernier examen", "en": "Latest study"},
    "img_patient_studies": {"fr": "Examens d'imagerie du patient", "en": "The patient's imaging studies"},
    "img_study": {"fr": "Examen", "en": "Study"},
    "img_date": {"fr": "Date", "en": "Date"},
    "img_description": {"fr": "Description", "en": "Description"},
    "img_modalities": {"fr": "Modalités", "en": "Modalities"},
    "img_series": {"fr": "Séries", "en": "Series"},
    "img_series_one": {"fr": "Série", "en": "Series"},
    "img_images": {"fr": "Images", "en": "Images"},
    "img_accession": {"fr": "Numéro d'accès", "en": "Accession number"},
    "img_ohif": {"fr": "Ouvrir dans OHIF (nouvel onglet)", "en": "Open in OHIF (new tab)"},
    "img_thumbnail": {"fr": "Vignette de la série", "en": "Thumbnail of series"},
    "img_view": {"fr": "Voir les images", "en": "View the images"},
    "img_image": {"fr": "Image", "en": "Image"},
    "img_of": {"fr": "sur", "en": "of"},
    "img_first": {"fr": "Première", "en": "First"},
    "img_previous": {"fr": "Image précédente", "en": "Previous image"},
    "img_next": {"fr": "Image suivante", "en": "Next image"},
    "img_last": {"fr": "Dernière", "en": "Last"},
    "img_go": {"fr": "Aller à l'image", "en": "Go to image"},
    "img_show": {"fr": "Afficher", "en": "Show"},
    "img_instance_number": {"fr": "numéro d'instance", "en": "instance number"},
    "img_navigation": {"fr": "Navigation dans l'imagerie", "en": "Imaging navigation"},
    "img_images_nav": {"fr": "Images de la série", "en": "Images of the series"},
    "img_not_found": {
        "fr": "Introuvable : aucun patient, examen ou série ne correspond, ou ses images ont été rejetées.",
        "en": "Not found: no patient, study or series matches, or its images were rejected.",
    },
    "img_bad_number": {"fr": "Numéro d'image invalide.", "en": "Invalid image number."},
})  # fmt: skip


# --- formatting ---------------------------------------------------------------------------------


def _date(value: str | None) -> str:
    v = (value or "").strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdecimal() else v


def _time(value: str | None) -> str:
    v = (value or "").strip()
    return f"{v[:2]}:{v[2:4]}" if len(v) >= 4 and v[:4].isdecimal() else ""


def _name(value: str | None) -> str:
    """A DICOM person name as French records write it: FAMILY Given."""
    parts = [p.strip() for p in (value or "").split("=")[0].split("^")]
    family, given = [*parts, "", ""][:2]
    return " ".join(p for p in (family.upper(), given) if p)


def _number(value: str | None) -> int:
    number = integer_string((value or "").strip())
    return 1 << 30 if number is None else number


def _valid_uid(value: str) -> bool:
    return len(value) <= 64 and bool(UID_RE.fullmatch(value))


def _valid_patient_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isprintable() and "\\" not in value


def _not_found(request: Request, principal: Principal) -> Response:
    return render(request, "message.html.j2", principal, status=404, heading="404",
                  text=say(language(request), "img_not_found"))  # fmt: skip


def _image(data: bytes, media: str, viewport: tuple[int, int] | None) -> Response:
    response = image_response(data, 1, media, None, viewport, 90)
    response.headers["Cache-Control"] = CACHE
    return response


# --- the index ------------------------------------------------------------------------------------

# What a search looks for: Patient ID -> the issuers accepted (None in the set: studies without
# an issuer), or ANY issuer (a bare Patient ID typed in the form). Each (Patient ID, issuer)
# found is a patient of its own.
ANY = None
Wanted = dict[str, set[str | None] | None]


def _want(wanted: Wanted, patient_id: str, issuers: set[str | None] | None) -> None:
    if not _valid_patient_id(patient_id):
        return
    if patient_id in wanted and wanted[patient_id] is ANY:
        return
    if issuers is ANY:
        wanted[patient_id] = ANY
    else:
        wanted.setdefault(patient_id, set()).update(issuers)  # type: ignore[union-attr]


def _by_identifier(hub: Hub, text: str) -> tuple[Wanted, list[str]]:
    """(Patients to look for, person keys found) for an identifier typed in the form."""
    wanted: Wanted = {}
    systems = hub.settings.imaging.issuer_systems
    if "|" in text:
        found = hub.identities.lookup(text)  # ValidationError when malformed
        system, _, value = text.rpartition("|")
        # the value itself may be a Patient ID of that system
        _want(wanted, value, issuer_names(system, systems))
    else:
        found = [
            ident
            for system in hub.settings.ingest.merge_identifier_systems
            for ident in hub.identities.by_identifier(system, text)
        ]
        _want(wanted, text, ANY)  # the value itself may be a Patient ID (an IPP, say), of any site
    for ident in found:
        for item in ident.get("identifier") or []:
            if isinstance(item, dict) and item.get("value"):
                _want(wanted, str(item["value"]), issuer_names(str(item.get("system") or ""), systems))
    return wanted, sorted({f["person_key"] for f in found})


def _by_name(hub: Hub, text: str, wanted: Wanted) -> None:
    """The patients (Patient ID, issuer) whose name starts with ``text`` (any case, any name
    component; "Family Given" matches Family^Given), or whose Patient ID equals it: QIDO-RS
    searches of the index."""
    queries = [[("PatientName", text), ("fuzzymatching", "true")], [("PatientID", text)]]
    if " " in text.strip():
        queries.append([("PatientName", "^".join(text.split())), ("fuzzymatching", "true")])
    for params in queries:
        query = parse_query([*params, ("limit", str(NAME_MATCHES))], "study")
        for match in search(hub.catalog, query, ""):
            for pid in match.get("00100020", {}).get("Value", []):
                _want(wanted, str(pid), {(match.get("00100021", {}).get("Value") or [None])[0]})


def _patient_url(patient_id: str, issuer: str | None) -> str:
    """A patient's page: the issuer in the query (none: the studies without an issuer)."""
    url = f"/imaging/patients/{quote(patient_id, safe='')}"
    return url + ("?" + urlencode({"issuer": issuer}) if issuer else "")


def _patients(hub: Hub, wanted: Wanted) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per patient (Patient ID, issuer) holding visible studies, and those studies' UIDs."""
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}
    studies: list[str] = []
    columns = (DicomStudy.patient_id, DicomStudy.issuer_of_patient_id, DicomStudy.study_uid,
               DicomStudy.patient_name, DicomStudy.patient_birth_date, DicomStudy.patient_sex,
               DicomStudy.study_date)  # fmt: skip
    with Session(hub.catalog) as s:
        for chunk in in_chunks(sorted(wanted)):
            stmt = select(*columns).where(DicomStudy.patient_id.in_(chunk), DicomStudy.rejected_at.is_(None))
            for pid, issuer, uid, name, birth, sex, date in s.execute(stmt):
                accepted = wanted.get(pid)
                if accepted is not ANY and issuer not in accepted:  # type: ignore[operator]
                    continue  # the same number, issued by another site: someone else
                studies.append(uid)
                row = rows.setdefault((pid, issuer), {
                    "id": pid, "issuer": issuer, "url": _patient_url(pid, issuer), "name": "", "birth": "",
                    "sex": "", "studies": 0, "last": ""})  # fmt: skip
                row["studies"] += 1
                if (date or "") >= row["last"]:
                    row["last"] = date or ""
                    row.update(name=_name(name) or row["name"], birth=_date(birth) or row["birth"],
                               sex=sex or row["sex"])  # fmt: skip
    patients = sorted(rows.values(), key=lambda r: (r["name"], r["id"], r["issuer"] or ""))
    for row in patients:
        row["last"] = _date(row["last"])
    return patients, studies


def _study_rows(s: Session, studies: list[DicomStudy]) -> list[dict[str, Any]]:
    """The studies with their visible series and instances counted and their modalities."""
    uids = [st.study_uid for st in studies]
    series: dict[str, int] = {}
    instances: dict[str, int] = {}
    modalities: dict[str, set[str]] = {}
    for chunk in in_chunks(uids):
        visible = DicomSeries.rejected_at.is_(None)
        for uid, modality in s.execute(
            select(DicomSeries.study_uid, DicomSeries.modality).where(
                DicomSeries.study_uid.in_(chunk), visible
            )
        ):
            series[uid] = series.get(uid, 0) + 1
            if modality:
                modalities.setdefault(uid, set()).add(modality)
        stmt = (
            select(DicomInstance.study_uid, func.count())
            .where(DicomInstance.study_uid.in_(chunk), DicomInstance.rejected_at.is_(None))
            .group_by(DicomInstance.study_uid)
        )
        instances.update({uid: n for uid, n in s.execute(stmt)})
    return [
        {
            "uid": st.study_uid,
            "date": _date(st.study_date),
            "time": _time(st.study_time),
            "description": st.study_description or "",
            "accession": st.accession_number or "",
            "modalities": ", ".join(sorted(modalities.get(st.study_uid, ()))),
            "series": series.get(st.study_uid, 0),
            "instances": instances.get(st.study_uid, 0),
        }
        for st in studies
    ]


def _patient(study: DicomStudy) -> dict[str, Any]:
    pid, issuer = study.patient_id or "", study.issuer_of_patient_id
    return {"id": pid, "issuer": issuer, "url": _patient_url(pid, issuer), "name": _name(study.patient_name),
            "birth": _date(study.patient_birth_date), "sex": study.patient_sex or ""}  # fmt: skip


def _who(study: DicomStudy | None) -> list[tuple[str | None, str | None]]:
    """The study's patient for its audit event: (Patient ID, issuer)."""
    return [(study.patient_id, study.issuer_of_patient_id)] if study is not None else []


def _visible_study(s: Session, study_uid: str) -> DicomStudy | None:
    study = s.get(DicomStudy, study_uid)
    return study if study is not None and study.rejected_at is None else None


def _ohif(hub: Hub, study_uid: str) -> str | None:
    template = hub.settings.imaging.ohif_url
    return template.replace("{study}", study_uid) if template else None


# --- pages --------------------------------------------------------------------------------------


@router.get("/imaging")
def imaging_page(request: Request) -> Response:
    principal = signed_in(request, ACTION)
    if not isinstance(principal, Principal):
        return principal
    hub, lang = get_hub(request), language(request)
    identifier = request.query_params.get("identifier", "").strip()
    name = request.query_params.get("name", "").strip()
    form = {"identifier": identifier[:MAX_QUERY], "name": name[:MAX_QUERY]}
    error, status = None, 200
    wanted: Wanted = {}
    persons: list[str] = []
    if len(identifier) > MAX_QUERY or len(name) > MAX_QUERY:
        error, status = say(lang, "img_too_long"), 400
    elif name and len(name.replace("*", "").replace("?", "").strip()) < 2:
        error, status = say(lang, "img_too_short"), 400
    else:
        try:
            if identifier:
                wanted, persons = _by_identifier(hub, identifier)
            if name:
                _by_name(hub, name, wanted)
        except ValidationError as exc:
            error, status = exc.message, 400
    patients, studies = _patients(hub, wanted) if wanted and error is None else ([], [])
    shown = patients[:MAX_PATIENTS]
    audit_context(request, **reached(studies, [(p["id"], p["issuer"]) for p in patients], persons=persons))
    return render(request, "imaging.html.j2", principal, status=status, form=form, error=error,
                  searched=bool(identifier or name) and error is None, patients=shown,
                  more=len(patients) > len(shown))  # fmt: skip


@router.get("/imaging/patients/{patient_id:path}")
def patient_page(request: Request, patient_id: str) -> Response:
    principal = signed_in(request, ACTION)
    if not isinstance(principal, Principal):
        return principal
    # The issuer is part of who the patient is: none given, the studies stored without one.
    issuer = request.query_params.get("issuer") or None
    if not _valid_patient_id(patient_id) or (issuer is not None and not _valid_patient_id(issuer)):
        return _not_found(request, principal)
    same_issuer = (
        DicomStudy.issuer_of_patient_id == issuer
        if issuer is not None
        else DicomStudy.issuer_of_patient_id.is_(None)
    )
    with Session(get_hub(request).catalog) as s:
        found = list(
            s.scalars(
                select(DicomStudy)
                .where(DicomStudy.patient_id == patient_id, same_issuer, DicomStudy.rejected_at.is_(None))
                .order_by(DicomStudy.study_date.desc(), DicomStudy.study_time.desc(), DicomStudy.study_uid)
                .limit(MAX_STUDIES)
            )
        )
        audit_context(request, **reached([st.study_uid for st in found], [(patient_id, issuer)]))
        if not found:
            return _not_found(request, principal)
        studies = _study_rows(s, found)
        patient = _patient(found[0])
    return render(request, "imaging_patient.html.j2", principal, patient=patient, studies=studies,
                  more=len(found) >= MAX_STUDIES)  # fmt: skip


@router.get("/imaging/studies/{study_uid}")
def study_page(request: Request, study_uid: str) -> Response:
    principal = signed_in(request, ACTION)
    if not isinstance(principal, Principal):
        return principal
    if not _valid_uid(study_uid):
        return _not_found(request, principal)
    hub = get_hub(request)
    with Session(hub.catalog) as s:
        study = _visible_study(s, study_uid)
        if study is None:
            audit_context(request, **reached([study_uid], []))
            return _not_found(request, principal)
        audit_context(request, **reached([study_uid], _who(study)))
        counts = dict(
            s.execute(
                select(DicomInstance.series_uid, func.count())
                .where(DicomInstance.study_uid == study_uid, DicomInstance.rejected_at.is_(None))
                .group_by(DicomInstance.series_uid)
            ).all()
        )
        rows = s.scalars(
            select(DicomSeries).where(DicomSeries.study_uid == study_uid, DicomSeries.rejected_at.is_(None))
        )
        series = sorted(
            (
                {
                    "uid": se.series_uid,
                    "number": (se.series_number or "").strip(),
                    "modality": se.modality or "",
                    "description": se.series_description or "",
                    "body_part": se.body_part_examined or "",
                    "instances": counts[se.series_uid],
                }
                for se in rows
                if counts.get(se.series_uid)
            ),
            key=lambda r: (_number(r["number"]), r["uid"]),
        )
        info = _study_rows(s, [study])[0]
        patient = _patient(study)
    return render(request, "imaging_study.html.j2", principal, patient=patient, study=info, series=series,
                  ohif=_ohif(hub, study_uid))  # fmt: skip


@router.get("/imaging/studies/{study_uid}/series/{series_uid}")
def series_page(request: Request, study_uid: str, series_uid: str) -> Response:
    principal = signed_in(request, ACTION)
    if not isinstance(principal, Principal):
        return principal
    if not (_valid_uid(study_uid) and _valid_uid(series_uid)):
        return _not_found(request, principal)
    raw = request.query_params.get("i", "1").strip()
    if not raw.isdecimal() or len(raw) > 9:
        return render(request, "message.html.j2", principal, status=400, heading="400",
                      text=say(language(request), "img_bad_number"))  # fmt: skip
    with Session(get_hub(request).catalog) as s:
        study = _visible_study(s, study_uid)
        se = s.get(DicomSeries, series_uid)
        if study is None or se is None or se.study_uid != study_uid or se.rejected_at is not None:
            audit_context(request, **reached([study_uid], _who(study)))
            return _not_found(request, principal)
        audit_context(request, **reached([study_uid], _who(study)))
        rows = s.execute(
            select(DicomInstance.sop_instance_uid, DicomInstance.instance_number).where(
                DicomInstance.series_uid == series_uid,
                DicomInstance.study_uid == study_uid,
                DicomInstance.rejected_at.is_(None),
            )
        ).all()
        if not rows:
            return _not_found(request, principal)
        instances = sorted(rows, key=lambda r: (_number(r[1]), r[0]))
        index = min(max(int(raw), 1), len(instances))
        sop, number = instances[index - 1]
        patient, info = _patient(study), _study_rows(s, [study])[0]
        series = {
            "uid": series_uid,
            "number": (se.series_number or "").strip(),
            "modality": se.modality or "",
            "description": se.series_description or "",
        }
    return render(request, "imaging_series.html.j2", principal, patient=patient, study=info, series=series,
                  index=index, total=len(instances), sop=sop, number=(number or "").strip())  # fmt: skip


# --- images (the session's own routes; the rendering is DICOMweb's) -------------------------------


@router.get("/imaging/studies/{study_uid}/series/{series_uid}/thumbnail")
def series_thumbnail(request: Request, study_uid: str, series_uid: str) -> Response:
    principal = signed_in(request, ACTION)
    if not isinstance(principal, Principal):
        return principal
    if not (_valid_uid(study_uid) and _valid_uid(series_uid)):
        raise NotFound("no such series")
    hub = get_hub(request)
    _, sop = first_image(hub, study_uid, series_uid)
    return _image(instance_bytes(request, hub, study_uid, series_uid, sop), "image/jpeg", THUMBNAIL)


@router.get("/imaging/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered")
def rendered_instance(request: Request, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    principal = signed_in(request, ACTION)
    if not isinstance(principal, Principal):
        return principal
    if not (_valid_uid(study_uid) and _valid_uid(series_uid) and _valid_uid(sop_uid)):
        raise NotFound("no such instance")
    data = instance_bytes(request, get_hub(request), study_uid, series_uid, sop_uid)
    return _image(data, "image/png", None)
