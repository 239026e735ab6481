"""``create_app(hub)``: the FastAPI application of one deployment."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from hdhub import __version__
from hdhub.api.deps import project_fence
from hdhub.api.errors import install_error_handlers
from hdhub.api.middleware import HttpMetrics, install_middleware
from hdhub.api.routes import (
    admin_pages,
    audit,
    audit_pages,
    auth,
    cohort_pages,
    cohorts,
    dicomweb,
    dicomweb_images,
    health,
    identities,
    imaging_pages,
    media,
    monitoring,
    monitoring_pages,
    oidc_login,
    pages,
    project_pages,
    projects,
    tokens,
    users,
    warehouse_pages,
    workspace_pages,
    workspaces,
)
from hdhub.hub import Hub
from hdhub.security.oidc import OidcVerifier
from hdhub.security.oidc_login import BrowserSignIn


def app_from_environment() -> FastAPI:
    """The app of the deployment named by ``HDHUB_HOME``: the factory each worker process of
    ``hdhub serve --workers N`` calls (a Hub cannot cross processes)."""
    from hdhub.catalog.checkpoints import Checkpoints
    from hdhub.heap import freeze_startup_heap, load_lazy_modules

    app = create_app(Hub.open())
    Checkpoints(app.state.hub.catalog).start()  # for the process's life
    load_lazy_modules()
    freeze_startup_heap()
    return app


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(
        title="hdhub",
        version=__version__,
        description="Health data platform API: platform, FHIR R4 (/fhir/r4) and DICOMweb (/dicomweb).",
        dependencies=[Depends(project_fence)],
    )
    app.state.hub = hub
    app.state.metrics = HttpMetrics()
    oidc = hub.settings.oidc
    app.state.oidc = OidcVerifier(oidc, hub.settings.home) if oidc.issuer else None
    app.state.oidc_login = (
        BrowserSignIn(oidc, hub.settings.home, app.state.oidc, hub.keys.pseudonym)
        if app.state.oidc is not None and oidc.client_id
        else None
    )
    install_error_handlers(app)
    install_middleware(app, app.state.metrics)
    for module in (
        health,
        auth,
        users,
        tokens,
        audit,
        identities,
        cohorts,
        projects,
        dicomweb,
        dicomweb_images,
        media,
        monitoring,
        workspaces,
    ):
        app.include_router(module.router)
    app.include_router(workspaces.admin_router)
    app.include_router(cohorts.concepts_router)
    app.include_router(projects.page_router)
    app.include_router(pages.router)
    app.include_router(oidc_login.router)
    app.include_router(project_pages.router)
    app.include_router(workspace_pages.router)
    app.include_router(audit_pages.router)
    app.include_router(monitoring_pages.router)
    app.include_router(warehouse_pages.router)
    app.include_router(cohort_pages.router)
    app.include_router(imaging_pages.router)
    app.include_router(admin_pages.router)
    return app
