"""Research projects in the browser: the list (the committee's queue, a requester's own
projects), the request form (a new draft, or the author's draft edited; saved, or submitted
to the committee at once), a project's request, reviews and approved perimeter, and the
committee's comment, vote and decision."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any
from urllib.parse import parse_qsl

import pydantic
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hdhub.api.deps import audit_context, get_hub, read_body
from hdhub.api.pages import add_texts, forbidden_page, language, render, same_origin, signed_in
from hdhub.api.routes.projects import DECIDED, ProjectIn, readable, view
from hdhub.catalog.models import Project, ProjectMember, ProjectReview
from hdhub.errors import HdhubError, ValidationError
from hdhub.governance import projects as gov
from hdhub.security.authz import decide
from hdhub.security.principal import Principal

router = APIRouter(include_in_schema=False)
QUEUE_FIRST = {"submitted": 0, "under_review": 1, "changes_requested": 2}
MAX_FORM_BYTES = 2_000_000  # a purpose, 41 justifications and every column, with room to spare

add_texts({
    "pj_queue": {"fr": "Projets soumis au comité", "en": "Projects submitted to the committee"},
    "pj_mine": {"fr": "Mes projets", "en": "My projects"},
    "pj_no_mine": {"fr": "Vous n'avez encore aucun projet.", "en": "You have no project yet."},
    "pj_new": {"fr": "Nouvelle demande de projet", "en": "New project request"},
    "pj_edit": {"fr": "Modifier la demande", "en": "Edit the request"},
    "pj_your_role": {"fr": "Votre rôle", "en": "Your role"},
    "pj_role_author": {"fr": "auteur", "en": "author"},
    "pj_role_pi": {"fr": "investigateur principal", "en": "principal investigator"},
    "pj_role_member": {"fr": "membre", "en": "member"},
    "pj_role_external": {"fr": "partenaire extérieur", "en": "external partner"},
    "pj_st_draft": {"fr": "brouillon", "en": "draft"},
    "pj_st_submitted": {"fr": "soumis", "en": "submitted"},
    "pj_st_under_review": {"fr": "en cours d'examen", "en": "under review"},
    "pj_st_changes_requested": {"fr": "modifications demandées", "en": "changes requested"},
    "pj_st_approved": {"fr": "approuvé", "en": "approved"},
    "pj_st_rejected": {"fr": "refusé", "en": "rejected"},
    "pj_st_active": {"fr": "actif", "en": "active"},
    "pj_st_expired": {"fr": "expiré", "en": "expired"},
    "pj_st_closed": {"fr": "clos", "en": "closed"},
    "pj_form_intro": {
        "fr": "Le comité scientifique et éthique examine chaque demande d'accès aux données. Enregistrez "
        "un brouillon pour le compléter plus tard, ou soumettez la demande au comité. Le titre, la "
        "finalité, l'investigateur principal et la base légale d'une demande soumise sont publiés dans "
        "le registre public.",
        "en": "The scientific and ethics committee reviews every request for data. Save a draft to "
        "complete it later, or submit the request to the committee. The title, purpose, principal "
        "investigator and legal basis of a submitted request are published in the public register.",
    },
    "pj_error": {"fr": "La demande n'a pas été enregistrée :", "en": "The request was not saved:"},
    "pj_about": {"fr": "Le projet", "en": "The project"},
    "pj_title": {"fr": "Titre", "en": "Title"},
    "pj_slug": {"fr": "Identifiant court", "en": "Short identifier"},
    "pj_slug_help": {
        "fr": "3 à 48 lettres minuscules, chiffres ou « - » ; laissé vide, il est tiré du titre. Il ne "
        "change plus ensuite.",
        "en": "3 to 48 lowercase letters, digits or '-'; left empty, it is made from the title. It "
        "cannot change afterwards.",
    },
    "pj_legal_help": {
        "fr": "La formalité CNIL ou la méthodologie de référence dont relève le projet.",
        "en": "The CNIL formality or reference methodology the project falls under.",
    },
    "pj_choose": {"fr": "— choisir —", "en": "— choose —"},
    "pj_team": {"fr": "L'équipe", "en": "The team"},
    "pj_pi_help": {
        "fr": "L'identifiant d'un clinicien du groupe.",
        "en": "The user name of a clinician of the group.",
    },
    "pj_members_help": {
        "fr": "Identifiants des utilisateurs, séparés par des virgules ou des retours à la ligne.",
        "en": "User names, separated by commas or new lines.",
    },
    "pj_externals": {"fr": "Partenaires extérieurs", "en": "External partners"},
    "pj_externals_help": {
        "fr": "Facultatif : partenaires hors du groupe, sous la responsabilité de l'investigateur "
        "principal ; séparés par des virgules ou des retours à la ligne.",
        "en": "Optional: partners outside the group, under the principal investigator; separated by "
        "commas or new lines.",
    },
    "pj_cohort_none": {"fr": "— aucune —", "en": "— none —"},
    "pj_cohort_help": {
        "fr": "Une de vos définitions de cohorte enregistrées, dans une version donnée. Les cohortes se "
        "construisent et s'enregistrent dans l'explorateur de cohortes (/cohorts).",
        "en": "One of your saved cohort definitions, at a given version. Cohorts are built and saved "
        "in the cohort explorer (/cohorts).",
    },
    "pj_no_cohorts": {
        "fr": "Vous n'avez encore enregistré aucune définition de cohorte : construisez-la dans "
        "l'explorateur de cohortes, enregistrez-la, puis revenez à ce formulaire (le brouillon peut "
        "être enregistré sans cohorte).",
        "en": "You have not saved any cohort definition yet: build one in the cohort explorer, save "
        "it, then come back to this form (the draft can be saved without a cohort).",
    },
    "pj_version": {"fr": "version", "en": "version"},
    "pj_data_help": {
        "fr": "Ouvrez chaque table nécessaire, cochez ses colonnes (ou « toutes les colonnes ») et "
        "justifiez-la en une phrase au moins. Ne demandez que le nécessaire : le comité approuve un "
        "périmètre, l'extraction n'en sortira pas.",
        "en": "Open each table you need, tick its columns (or 'all columns') and justify it in at least "
        "a sentence. Ask only for what is needed: the committee approves a perimeter, and the extract "
        "never goes beyond it.",
    },
    "pj_schema_CDM": {"fr": "Données cliniques (OMOP CDM)", "en": "Clinical data (OMOP CDM)"},
    "pj_schema_VOCAB": {"fr": "Vocabulaires", "en": "Vocabularies"},
    "pj_schema_RESULTS": {"fr": "Résultats", "en": "Results"},
    "pj_columns_of": {"fr": "Colonnes de", "en": "Columns of"},
    "pj_all_columns": {"fr": "Toutes les colonnes", "en": "All columns"},
    "pj_requested": {"fr": "demandée", "en": "requested"},
    "pj_period": {"fr": "Période et durée", "en": "Period and duration"},
    "pj_date_from": {"fr": "Données à partir du", "en": "Data from"},
    "pj_date_to": {"fr": "Données jusqu'au", "en": "Data until"},
    "pj_optional": {"fr": "(facultatif)", "en": "(optional)"},
    "pj_duration": {"fr": "Durée du projet en mois (1 à 120)", "en": "Project duration in months (1 to 120)"},
    "pj_save": {"fr": "Enregistrer le brouillon", "en": "Save the draft"},
    "pj_submit": {"fr": "Soumettre au comité", "en": "Submit to the committee"},
    "pj_perimeter": {"fr": "Périmètre approuvé", "en": "Approved perimeter"},
    "pj_perimeter_help": {
        "fr": "Fixé par la décision du comité : l'extraction du projet n'en sort pas.",
        "en": "Fixed by the committee's decision: the project's extract never goes beyond it.",
    },
    "pj_period_label": {"fr": "Période des données", "en": "Period of the data"},
    "pj_keep_dates": {"fr": "Dates réelles", "en": "Real dates"},
    "pj_dates_kept": {"fr": "conservées", "en": "kept"},
    "pj_dates_shifted": {
        "fr": "non : les dates de chaque patient sont décalées",
        "en": "no: each patient's dates are shifted",
    },
    "pj_author": {"fr": "Auteur", "en": "Author"},
    "pj_duration_label": {"fr": "Durée", "en": "Duration"},
    "pj_months": {"fr": "mois", "en": "months"},
    "pj_your_request": {"fr": "Votre demande", "en": "Your request"},
    "pj_draft_note": {
        "fr": "Cette demande n'est pas encore soumise : seuls vous et l'équipe la voyez.",
        "en": "This request is not submitted yet: only you and the team see it.",
    },
    "pj_changes_note": {
        "fr": "Le comité demande des modifications (voir ses avis) : modifiez la demande puis "
        "soumettez-la de nouveau.",
        "en": "The committee asks for changes (see its reviews): edit the request, then submit it again.",
    },
    "pj_cancel": {"fr": "Retour au projet", "en": "Back to the project"},
    "pj_register_intro": {
        "fr": "Chaque projet soumis au comité scientifique et éthique de l'entrepôt de données de santé, "
        "avec son investigateur principal, sa base légale, son statut et ses dates.",
        "en": "Every project submitted to the health data warehouse's scientific and ethics committee, "
        "with its principal investigator, legal basis, status and dates.",
    },
    "pj_register_none": {
        "fr": "Aucun projet soumis pour l'instant.",
        "en": "No project has been submitted yet.",
    },
    "pj_register_count": {"fr": "projet(s)", "en": "project(s)"},
    "pj_decided": {"fr": "Décision", "en": "Decided"},
})  # fmt: skip

# The legal bases offered in the form (the service takes any 1-100 characters; the API too).
LEGAL_BASES = (
    ("MR-004", {"fr": "MR-004 — recherche n'impliquant pas la personne humaine, études sur données",
                "en": "MR-004 — research not involving the human person, studies on data"}),
    ("MR-001", {"fr": "MR-001 — recherche impliquant la personne humaine, avec consentement",
                "en": "MR-001 — research involving the human person, with consent"}),
    ("MR-003", {"fr": "MR-003 — recherche impliquant la personne humaine, sans recueil du consentement",
                "en": "MR-003 — research involving the human person, without collecting consent"}),
    ("MR-005", {"fr": "MR-005 — études sur les données du PMSI (établissements)",
                "en": "MR-005 — studies on PMSI data (hospitals)"}),
    ("MR-006", {"fr": "MR-006 — études sur les données du PMSI (industriels)",
                "en": "MR-006 — studies on PMSI data (industry)"}),
    ("Autorisation CNIL", {"fr": "Autorisation de la CNIL", "en": "CNIL authorisation"}),
)  # fmt: skip
FIELDS = ("title", "slug", "purpose", "legal_basis", "pi", "members", "externals", "cohort",
          "date_from", "date_to", "duration_months")  # fmt: skip
_DATA_FIELD = re.compile(r"^(col|all|just):(.+)\Z")


def _row(p: Project) -> dict[str, Any]:
    return {
        "slug": p.slug, "title": p.title, "pi": p.pi, "status": p.status,
        "submitted": p.submitted_at.date().isoformat() if p.submitted_at else None,
        "expires": p.expires_at.date().isoformat() if p.expires_at else None,
    }  # fmt: skip


@router.get("/projects")
def projects_page(request: Request) -> Response:
    """The committee (and the DPO) see every submitted project, its queue first; requesters
    see the projects they wrote or belong to, with their part in each."""
    principal = signed_in(request, "projects:read")
    if not isinstance(principal, Principal):
        return principal
    can_request = decide(principal, "projects:request").allowed
    queue: list[dict[str, Any]] | None = None
    mine: list[dict[str, Any]] | None = None
    with Session(get_hub(request).catalog) as s:
        if principal.roles & {"committee", "dpo"}:
            rows = sorted(s.scalars(select(Project).where(Project.status != "draft")),
                          key=lambda p: (QUEUE_FIRST.get(p.status, 9), p.slug))  # fmt: skip
            queue = [_row(p) for p in rows]
        elif decide(principal, "workspaces:provision").allowed:  # the approved projects, to provision
            rows = s.scalars(select(Project).where(Project.status.in_(DECIDED)).order_by(Project.slug))
            queue = [_row(p) for p in rows]
        if can_request or queue is None:
            parts = dict(
                s.execute(
                    select(ProjectMember.project_id, ProjectMember.role).where(
                        ProjectMember.username == principal.name
                    )
                ).all()
            )
            stmt = select(Project).where(or_(Project.id.in_(parts), Project.created_by == principal.name))
            mine = []
            for p in sorted(s.scalars(stmt), key=lambda p: (p.created_at, p.id), reverse=True):
                roles = (["author"] if p.created_by == principal.name else []) + (
                    [parts[p.id]] if p.id in parts else []
                )
                mine.append(_row(p) | {"roles": roles})
    return render(request, "projects.html.j2", principal, queue=queue, mine=mine, can_request=can_request)


# --- the request form --------------------------------------------------------------------------


def _slug_of(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title).strip("-")[:48].strip("-")


def _names(text: str) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in re.split(r"[,;\n\r]+", text) if n.strip()))


def _tables() -> list[dict[str, Any]]:
    """The tables a request may name (those the service checks against), grouped by schema."""
    from hdhub.warehouse.schema import ALL_TABLES

    groups: dict[str, list[dict[str, Any]]] = {}
    for table in ALL_TABLES.values():
        groups.setdefault(table.schema, []).append(
            {"name": table.name, "description": table.description, "columns": [c.name for c in table.columns]}
        )
    return [{"schema": schema, "tables": tables} for schema, tables in groups.items()]


def _cohorts(request: Request, owner: str) -> list[dict[str, Any]]:
    from hdhub.cohorts.service import list_definitions

    return [
        {"value": f"{row.version}:{row.name}", "name": row.name, "version": row.version}
        for row in list_definitions(get_hub(request).catalog, owner)
    ]


def _read_form(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The form's plain fields, and per table: {all, cols, just} as the user left them."""
    values = dict.fromkeys(FIELDS, "")
    picked: dict[str, dict[str, Any]] = {}
    for key, value in pairs:
        if key in values:
            values[key] = values[key] or value  # the first one given
            continue
        m = _DATA_FIELD.match(key)
        if m is None:
            continue
        kind, table = m.groups()
        item = picked.setdefault(table, {"all": False, "cols": [], "just": ""})
        if kind == "col":
            item["cols"].append(value)
        elif kind == "all":
            item["all"] = True
        else:
            item["just"] = value
    return values, picked


def _request_of(values: dict[str, str], picked: dict[str, dict[str, Any]]) -> gov.ProjectRequest:
    """The form as the JSON API's ProjectIn (its limits), then as the service's request."""
    from hdhub.warehouse.schema import ALL_TABLES

    order = [t for t in ALL_TABLES if t in picked] + [t for t in picked if t not in ALL_TABLES]
    data, tables = [], []
    for name in order:
        item = picked[name]
        columns = list(dict.fromkeys(item["cols"]))
        if item["all"] and name in ALL_TABLES:
            columns = [c.name for c in ALL_TABLES[name].columns]
        if columns or item["just"].strip() or item["all"]:
            data.append({"table": name, "columns": columns, "justification": item["just"]})
            tables.append(name)
    cohort = None
    if values["cohort"]:
        version, _, name = values["cohort"].partition(":")
        cohort = {"name": name, "version": version}
    try:
        body = ProjectIn.model_validate({
            "slug": values["slug"], "title": values["title"], "purpose": values["purpose"],
            "legal_basis": values["legal_basis"], "principal_investigator": values["pi"].strip(),
            "members": _names(values["members"]), "externals": _names(values["externals"]),
            "cohort": cohort, "data": data, "date_from": values["date_from"] or None,
            "date_to": values["date_to"] or None,
            "duration_months": values["duration_months"].strip() or None,
        })  # fmt: skip
    except pydantic.ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = list(e["loc"])
            if loc[:1] == ["data"] and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(tables):
                loc = [tables[loc[1]], *loc[2:]]
            problems.append(f"{'.'.join(str(x) for x in loc) or 'form'}: {e['msg']}")
        raise ValidationError("; ".join(problems)) from None
    return body.to_request()


def _form_page(request: Request, principal: Principal, values: dict[str, str],
               picked: dict[str, dict[str, Any]], *, editing: str | None = None, error: str | None = None,
               status: int = 200) -> Response:  # fmt: skip
    lang = language(request)
    bases = [{"value": v, "label": label[lang]} for v, label in LEGAL_BASES]
    if values["legal_basis"] and values["legal_basis"] not in {b["value"] for b in bases}:
        bases.append({"value": values["legal_basis"], "label": values["legal_basis"]})
    return render(request, "project_new.html.j2", principal, status=status, form=values, picked=picked,
                  groups=_tables(), cohorts=_cohorts(request, principal.name), legal_bases=bases,
                  editing=editing, error=error)  # fmt: skip


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    body = await read_body(
        request, MAX_FORM_BYTES, f"a project request form holds at most {MAX_FORM_BYTES} bytes"
    )
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=5_000)


@router.get("/projects/new")
def new_project_page(request: Request) -> Response:
    principal = signed_in(request, "projects:request")
    if not isinstance(principal, Principal):
        return principal
    values = dict.fromkeys(FIELDS, "")
    if "clinician" in principal.roles:
        values["pi"] = principal.name
    return _form_page(request, principal, values, {})


def _save(
    request: Request, principal: Principal, pairs: list[tuple[str, str]], editing: str | None
) -> Response:
    values, picked = _read_form(pairs)
    if editing is None and not values["slug"].strip():
        values["slug"] = _slug_of(values["title"])
    values["slug"] = editing or values["slug"].strip()
    submit = dict(pairs).get("action") == "submit"
    try:
        req = _request_of(values, picked)
        with Session(get_hub(request).catalog) as s, s.begin():
            if editing is None:
                project = gov.create_project(s, req, created_by=principal.name)
            else:
                project = gov.get_project(s, editing)
                gov.update_project(s, project, req, by=principal.name)
            if submit:
                gov.submit(s, project, by=principal.name)
            slug = project.slug
    except HdhubError as exc:
        return _form_page(
            request, principal, values, picked, editing=editing, error=exc.message, status=exc.status
        )
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug,
                  detail={"submitted": True} if submit else None)  # fmt: skip
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/new")
async def new_project_post(request: Request) -> Response:
    """Create the draft, and with the "submit" button submit it to the committee at once; a
    refused request shows the form again, as the user left it, and stores nothing."""
    same_origin(request)
    principal = await run_in_threadpool(signed_in, request, "projects:request")
    if not isinstance(principal, Principal):
        return principal
    pairs = await _form_pairs(request)
    return await run_in_threadpool(_save, request, principal, pairs, None)


@router.get("/projects/{slug}/edit")
def edit_project_page(request: Request, slug: str) -> Response:
    """The author's draft (or request sent back) in the request form."""
    principal = signed_in(request, "projects:request")
    if not isinstance(principal, Principal):
        return principal
    with Session(get_hub(request).catalog) as s:
        audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
        p = gov.get_project(s, slug)
        if principal.name != p.created_by:  # the author alone (who reads it too)
            return forbidden_page(request, principal)
        if p.status not in gov.EDITABLE:
            error = f"project {slug!r} is {p.status}: it can no longer be edited"
            return render_project_page(request, principal, slug, status=409, error=error)
        members = gov.members_of(s, p)
        values = {
            "title": p.title, "slug": p.slug, "purpose": p.purpose, "legal_basis": p.legal_basis, "pi": p.pi,
            "members": ", ".join(u for u, r in members.items() if r == "member"),
            "externals": ", ".join(u for u, r in members.items() if r == "external"),
            "cohort": f"{p.cohort_version}:{p.cohort_name}" if p.cohort_name else "",
            "date_from": p.date_from or "", "date_to": p.date_to or "",
            "duration_months": str(p.duration_months),
        }  # fmt: skip
        picked = {
            d["table"]: {"all": False, "cols": d["columns"], "just": d["justification"]}
            for d in view(s, p)["data"]
        }
    return _form_page(request, principal, values, picked, editing=slug)


@router.post("/projects/{slug}/edit")
async def edit_project_post(request: Request, slug: str) -> Response:
    same_origin(request)
    principal = await run_in_threadpool(signed_in, request, "projects:request")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    pairs = await _form_pairs(request)
    return await run_in_threadpool(_save, request, principal, pairs, slug)


# --- a project's page --------------------------------------------------------------------------


def render_project_page(request: Request, principal: Principal, slug: str, error: str | None = None,
                            status: int = 200, token: str | None = None) -> Response:  # fmt: skip
    """The project's page, with an error (or a new project token) to show."""
    from hdhub.workspaces import airlock
    from hdhub.workspaces.runs import latest_run

    hub = get_hub(request)
    with Session(hub.catalog) as s:
        p = gov.get_project(s, slug)
        readable(s, principal, p)
        rows = s.scalars(
            select(ProjectReview).where(ProjectReview.project_id == p.id).order_by(ProjectReview.id)
        )
        reviews = [
            {
                "reviewer": r.reviewer,
                "vote": r.vote,
                "text": r.text,
                "at": r.at.isoformat()[:16].replace("T", " "),
            }
            for r in rows
        ]
        member = principal.name in gov.members_of(s, p)
        outsider = not member and principal.name != p.created_by
        workspace = p.status == "active" and p.frozen_at is None and p.extract_version is not None
        checker = decide(principal, "releases:review").allowed
        releases = [r.to_json() for r in airlock.list_releases(hub, slug=slug)] if member or checker else []
        can_review = (decide(principal, "projects:review").allowed and outsider
                      and p.status in ("submitted", "under_review"))  # fmt: skip
        can_token = member and workspace and decide(principal, "workspaces:token").allowed
        requester = decide(principal, "projects:request").allowed and p.status in gov.EDITABLE
        can_submit = requester and principal.name in (p.pi, p.created_by)
        can_edit = requester and principal.name == p.created_by
        can_provision = decide(principal, "workspaces:provision").allowed and p.status in (
            "approved",
            "active",
        )
        can_release = member and workspace and decide(principal, "workspaces:release").allowed
        run = latest_run(s, slug) if can_provision else None  # from the catalog: any worker, any restart
        return render(request, "project.html.j2", principal, status=status, p=view(s, p), reviews=reviews,
                      can_provision=can_provision, run=run, can_release=can_release,
                      can_review=can_review, can_decide=can_review and p.status == "under_review",
                      error=error, can_token=can_token, token=token, releases=releases,
                      checker=checker, can_submit=can_submit, can_edit=can_edit,
                      author=p.created_by, duration=p.duration_months,
                      dates=(p.date_from, p.date_to))  # fmt: skip


@router.get("/projects/{slug}")
def project_page(request: Request, slug: str) -> Response:
    principal = signed_in(request, "projects:read")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    return render_project_page(request, principal, slug)


@router.post("/projects/{slug}/submit")
def submit_page(request: Request, slug: str) -> Response:
    """The PI or the author submits a draft, or a request sent back, to the committee."""
    same_origin(request)
    principal = signed_in(request, "projects:request")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            p = gov.get_project(s, slug)
            readable(s, principal, p)
            gov.submit(s, p, by=principal.name)
    except HdhubError as exc:
        return render_project_page(request, principal, slug, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/{slug}/review")
def review_page(
    request: Request,
    slug: str,
    text: Annotated[str, Form(max_length=20_000)] = "",
    vote: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    same_origin(request)
    principal = signed_in(request, "projects:review")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug,
                  detail={"vote": vote} if vote else None)  # fmt: skip
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            p = gov.get_project(s, slug)
            if p.status == "submitted":
                gov.start_review(s, p, principal.name)
            gov.review(s, p, principal.name, vote=vote or None, text=text or None)
    except HdhubError as exc:
        return render_project_page(request, principal, slug, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/{slug}/decision")
def decision_page(request: Request, slug: str, outcome: Annotated[str, Form(max_length=24)]) -> Response:
    same_origin(request)
    principal = signed_in(request, "projects:review")
    if not isinstance(principal, Principal):
        return principal
    audit_context(
        request, resource_type="project", resource_id=slug, project_id=slug, detail={"outcome": outcome}
    )
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            gov.decide(s, gov.get_project(s, slug), principal.name, outcome)
    except HdhubError as exc:
        return render_project_page(request, principal, slug, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/{slug}/token")
def token_page(request: Request, slug: str) -> Response:
    """A project token for the signed-in member, shown once (for hdhub.workspace.connect)."""
    from datetime import timedelta

    from hdhub.security.tokens import issue_token
    from hdhub.security.users import get_user

    same_origin(request)
    principal = signed_in(request, "workspaces:token")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            user, project = get_user(s, principal.name), gov.get_project(s, slug)
            secret, _ = issue_token(s, user, name=f"project {slug}", ttl=timedelta(days=30), project=project)
    except HdhubError as exc:
        return render_project_page(request, principal, slug, error=str(exc), status=exc.status)
    response = render_project_page(request, principal, slug, token=secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/releases/{release_id}/review")
def release_review_page(request: Request, release_id: int, vote: Annotated[str, Form(max_length=8)],
                        text: Annotated[str, Form(max_length=20_000)] = "") -> Response:  # fmt: skip
    """An output checker approves or rejects a release request from the project page."""
    from hdhub.workspaces import airlock

    same_origin(request)
    principal = signed_in(request, "releases:review")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="release", resource_id=str(release_id), detail={"vote": vote})
    release = airlock.get_release(get_hub(request), release_id)
    audit_context(request, project_id=release.project)  # the DPO finds it under the project
    try:
        release = airlock.review_release(get_hub(request), release_id, principal.name, vote, text or None)
        audit_context(request, detail={"vote": vote, "status": release.status})
    except HdhubError as exc:
        return render_project_page(request, principal, release.project, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{release.project}", status_code=303)
