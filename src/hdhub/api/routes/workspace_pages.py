"""A project's workspace from its page: a data engineer provisions it, a member asks for a
release through the airlock.

Provisioning takes seconds to minutes, longer than a page may: the button starts it in a
background thread of the worker that took the request, and the project's page says how it
goes. The run is recorded in the catalog (:mod:`hdhub.workspaces.runs`), not in this process:
every worker shows it, a restart does not lose it (a run killed by one shows as interrupted),
and a second start while one is running — from the page, another worker or the CLI — is
refused. Both are audited like their commands (``project.provision``; the release request's
route event).
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from hdhub.api.deps import audit_context, get_hub
from hdhub.api.pages import add_texts, same_origin, signed_in
from hdhub.errors import Forbidden, HdhubError
from hdhub.governance import projects as gov
from hdhub.hub import Hub
from hdhub.security.principal import Principal
from hdhub.workspaces.output_checks import MAX_RELEASE_BYTES

router = APIRouter(include_in_schema=False)

add_texts({
    "ws_provision": {"fr": "Préparer l'espace de travail", "en": "Provision the workspace"},
    "ws_reprovision": {"fr": "Reconstruire l'espace de travail", "en": "Rebuild the workspace"},
    "ws_running": {"fr": "Préparation en cours depuis", "en": "Provisioning since"},
    "ws_alive": {"fr": "dernier signe de vie à", "en": "last sign of life at"},
    "ws_cli": {"fr": "en ligne de commande", "en": "from the command line"},
    "ws_interrupted": {"fr": "La préparation a été interrompue :", "en": "Provisioning was interrupted:"},
    "ws_started": {"fr": "lancée le", "en": "started"},
    "ws_done": {"fr": "Espace de travail prêt : extraction", "en": "Workspace ready: extract"},
    "ws_failed": {"fr": "La préparation a échoué :", "en": "Provisioning failed:"},
    "ws_persons": {"fr": "patients", "en": "persons"},
    "ws_release": {"fr": "Demander la sortie d'un résultat", "en": "Ask to release a result"},
    "ws_release_help": {
        "fr": "Un tableau agrégé (CSV) issu de l'espace de travail : il est contrôlé automatiquement, "
        "puis deux membres du comité le relisent avant qu'il ne sorte.",
        "en": "An aggregate table (CSV) from the workspace: it is checked automatically, then two "
        "committee members review it before it leaves.",
    },
    "ws_file": {"fr": "Fichier de résultat", "en": "Result file"},
    "ws_ask": {"fr": "Demander la sortie", "en": "Ask for release"},
    # a release request's status, and its checks' outcomes
    "rel_pending": {"fr": "en attente", "en": "pending"},
    "rel_released": {"fr": "publié", "en": "released"},
    "rel_rejected": {"fr": "refusé", "en": "rejected"},
    "chk_pass": {"fr": "conforme", "en": "pass"},
    "chk_review": {"fr": "à examiner", "en": "review"},
    "chk_fail": {"fr": "non conforme", "en": "fail"},
})  # fmt: skip


def _provision(hub: Hub, slug: str, principal: Principal, run_id: int) -> None:
    """The background thread: provision, record the run's outcome (runs) and audit it."""
    from hdhub.workspaces.runs import describe, run_provisioning

    try:
        result = run_provisioning(hub, run_id, slug, principal.name)
        detail = {"version": result.version, "persons": result.persons, "tables": result.tables,
                  "excluded_by_opposition": result.excluded_by_opposition}  # fmt: skip
        hub.audit.record(principal, "project.provision", resource_type="project", resource_id=slug,
                         project_id=slug, detail=detail)  # fmt: skip
    except Exception as exc:  # shown on the project's page; the extract is left as it was
        detail = {"error": describe(exc)[:500]}
        hub.audit.record(principal, "project.provision", outcome="failure", resource_type="project",
                         resource_id=slug, project_id=slug, detail=detail)  # fmt: skip


@router.post("/projects/{slug}/provision")
def provision_page(request: Request, slug: str) -> Response:
    same_origin(request)
    principal = signed_in(request, "workspaces:provision")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    hub = get_hub(request)
    from hdhub.api.routes.project_pages import render_project_page
    from hdhub.workspaces.runs import start_run

    try:  # provisionable, and not running already (here, on another worker or from the CLI)
        run_id = start_run(hub, slug, principal.name, "web")
    except HdhubError as exc:
        return render_project_page(request, principal, slug, str(exc), exc.status)
    audit_context(request, detail={"run": run_id})
    threading.Thread(target=_provision, args=(hub, slug, principal, run_id), name=f"provision-{slug}",
                     daemon=True).start()  # fmt: skip
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/{slug}/releases")
def release_page(
    request: Request,
    slug: str,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    """A member asks to release a result file from the workspace (the airlock's checks run)."""
    same_origin(request)
    principal = signed_in(request, "workspaces:release")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    from hdhub.api.routes.project_pages import render_project_page
    from hdhub.workspaces import airlock

    hub = get_hub(request)
    data = file.file.read(MAX_RELEASE_BYTES + 1)  # the airlock's checks refuse anything larger (413)
    filename = (name or file.filename or "").strip()
    try:
        with Session(hub.catalog) as s:
            p = gov.get_project(s, slug)
            if principal.name not in gov.members_of(s, p):
                raise Forbidden(f"{principal.name}: not a member of project {slug!r}")
        release = airlock.request_release(hub, slug, principal.name, filename, data)
    except HdhubError as exc:
        return render_project_page(request, principal, slug, str(exc), exc.status)
    detail = {"file": release.name, "sha256": release.sha256, "checks": release.check_status}
    audit_context(request, resource_type="release", resource_id=str(release.id), detail=detail)
    return RedirectResponse(f"/projects/{slug}#releases", status_code=303)
