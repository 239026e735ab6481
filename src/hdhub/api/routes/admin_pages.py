"""The administrators' pages: users and roles, API and device tokens, hospital sites,
storage policies.

Every page needs a signed-in admin (the 403 page otherwise). Every form checks its Origin
and calls the same service functions as the API and the CLI; the audit middleware records
each request like the API's (resource ``user``, ``api_token`` or ``device``). Passwords are
never sent back, except one generated here, shown once. Sites and policies are read-only.
"""

# ruff: noqa: S608  (table and column names are constants of this module)
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.api.deps import audit_context, get_hub
from hdhub.api.pages import add_texts, forbidden_page, language, render, same_origin, say, signed_in
from hdhub.catalog.models import MonitoringDevice, User, aware
from hdhub.config.settings import CONFIG_FILE
from hdhub.errors import HdhubError
from hdhub.monitoring.devices import revoke_device
from hdhub.security import tokens as token_service
from hdhub.security import users as user_service
from hdhub.security.authz import decide
from hdhub.security.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from hdhub.security.principal import Principal
from hdhub.security.users import PERSON_ROLES

router = APIRouter(include_in_schema=False)

FIELD_MAX = 4096  # form fields: longer ones get the framework's 422; shorter, a page saying why
PASSWORD_MAX = MAX_PASSWORD_LENGTH  # as the API's
LIST_LIMIT = 500  # tokens and devices listed, newest first
CARE_SITE_LIMIT = 200
USER_DONE = ("created", "roles", "disabled", "enabled")
TOKEN_DONE = ("token", "device")

add_texts({
    "adm_intro": {"fr": "Comptes et rôles, jetons, sites hospitaliers, politiques de stockage.",
                  "en": "Accounts and roles, tokens, hospital sites, storage policies."},
    "adm_sections": {"fr": "Rubriques de l'administration", "en": "Administration sections"},
    "adm_overview": {"fr": "Vue d'ensemble", "en": "Overview"},
    "adm_users": {"fr": "Utilisateurs et rôles", "en": "Users and roles"},
    "adm_tokens": {"fr": "Jetons", "en": "Tokens"},
    "adm_sites": {"fr": "Sites hospitaliers", "en": "Hospital sites"},
    "adm_policies": {"fr": "Politiques de stockage", "en": "Storage policies"},
    "adm_accounts": {"fr": "comptes", "en": "accounts"},
    "adm_live_tokens": {"fr": "jetons valides (sessions comprises)", "en": "live tokens (sessions included)"},
    "adm_active_devices": {"fr": "appareils actifs", "en": "active devices"},
    "adm_n_sites": {"fr": "sites", "en": "sites"},
    "adm_categories": {"fr": "catégories d'objets", "en": "categories of objects"},
    "adm_lifecycle_rules": {"fr": "règles de cycle de vie", "en": "lifecycle rules"},
    "adm_display_name": {"fr": "Nom affiché", "en": "Display name"},
    "adm_created": {"fr": "Créé le", "en": "Created"},
    "adm_actions": {"fr": "Actions", "en": "Actions"},
    "adm_active": {"fr": "actif", "en": "active"},
    "adm_disabled": {"fr": "désactivé", "en": "disabled"},
    "adm_no_password": {"fr": "sans mot de passe local", "en": "no local password"},
    "adm_you": {"fr": "vous", "en": "you"},
    "adm_disable": {"fr": "Désactiver", "en": "Disable"},
    "adm_enable": {"fr": "Réactiver", "en": "Enable"},
    "adm_change_roles": {"fr": "Modifier les rôles", "en": "Change the roles"},
    "adm_roles_of": {"fr": "Rôles de", "en": "Roles of"},
    "adm_save": {"fr": "Enregistrer", "en": "Save"},
    "adm_reset_password": {"fr": "Nouveau mot de passe", "en": "New password"},
    "adm_new_user": {"fr": "Créer un compte", "en": "Create an account"},
    "adm_username_hint": {"fr": "2 à 150 caractères : lettres, chiffres et . _ @ -",
                          "en": "2 to 150 characters: letters, digits and . _ @ -"},
    "adm_initial_password": {"fr": "Mot de passe initial (facultatif)", "en": "Initial password (optional)"},
    "adm_password_hint": {"fr": f"{MIN_PASSWORD_LENGTH} caractères au moins. Laissé vide, un mot de passe "
                                "est généré et affiché une seule fois.",
                          "en": f"At least {MIN_PASSWORD_LENGTH} characters. Left empty, a password is "
                                "generated and shown once."},
    "adm_create": {"fr": "Créer le compte", "en": "Create the account"},
    "adm_password_once": {"fr": "Mot de passe affiché une seule fois, à transmettre par un canal sûr, pour",
                          "en": "Password shown once, to hand over through a safe channel, for"},
    "adm_self_disable": {"fr": "Vous ne pouvez pas désactiver votre propre compte.",
                         "en": "You cannot disable your own account."},
    "adm_self_admin": {"fr": "Vous ne pouvez pas retirer votre propre rôle admin.",
                       "en": "You cannot remove your own admin role."},
    "adm_bad_role": {"fr": "Rôle inconnu ou qu'un compte ne peut pas recevoir :",
                     "en": "Unknown role, or one an account cannot hold:"},
    "adm_no_role": {"fr": "Choisissez au moins un rôle.", "en": "Choose at least one role."},
    "adm_password_long": {"fr": f"Mot de passe trop long : {PASSWORD_MAX} caractères au plus.",
                          "en": f"Password too long: at most {PASSWORD_MAX} characters."},
    "adm_nothing_stored": {"fr": "Rien n'a été enregistré.", "en": "Nothing was stored."},
    "adm_done_created": {"fr": "Compte créé :", "en": "Account created:"},
    "adm_done_roles": {"fr": "Rôles modifiés :", "en": "Roles changed:"},
    "adm_done_disabled": {"fr": "Compte désactivé, ses sessions et jetons sont refusés :",
                          "en": "Account disabled, its sessions and tokens are refused:"},
    "adm_done_enabled": {"fr": "Compte réactivé :", "en": "Account enabled:"},
    "adm_done_token": {"fr": "Jeton révoqué.", "en": "Token revoked."},
    "adm_done_device": {"fr": "Appareil révoqué.", "en": "Device revoked."},
    "adm_api_tokens": {"fr": "Jetons d'API et sessions web", "en": "API tokens and web sessions"},
    "adm_device_tokens": {"fr": "Jetons des appareils de télésurveillance",
                          "en": "Remote-monitoring devices' tokens"},
    "adm_tokens_note": {"fr": "Les secrets ne sont jamais conservés : seul leur début (préfixe) est affiché.",
                        "en": "Secrets are never stored: only their first characters (prefix) are shown."},
    "adm_token": {"fr": "Jeton", "en": "Token"},
    "adm_kind_web": {"fr": "session web", "en": "web session"},
    "adm_kind_api": {"fr": "jeton d'API", "en": "API token"},
    "adm_kind_project": {"fr": "jeton de projet", "en": "project token"},
    "adm_expires": {"fr": "Expire le", "en": "Expires"},
    "adm_last_used": {"fr": "Dernière utilisation", "en": "Last used"},
    "adm_never": {"fr": "jamais", "en": "never"},
    "adm_revoke": {"fr": "Révoquer", "en": "Revoke"},
    "adm_revoked": {"fr": "révoqué", "en": "revoked"},
    "adm_expired": {"fr": "expiré", "en": "expired"},
    "adm_show_all": {"fr": "Afficher aussi les jetons révoqués et expirés",
                     "en": "Also show revoked and expired tokens"},
    "adm_show_live": {"fr": "N'afficher que les jetons valides", "en": "Show live tokens only"},
    "adm_newest": {"fr": "les plus récents d'abord, 500 au plus", "en": "newest first, at most 500"},
    "adm_no_tokens": {"fr": "Aucun jeton.", "en": "No tokens."},
    "adm_device": {"fr": "Appareil", "en": "Device"},
    "adm_device_kind": {"fr": "Type d'appareil", "en": "Kind of device"},
    "adm_patient_key": {"fr": "Patient (clé pseudonyme)", "en": "Patient (pseudonymous key)"},
    "adm_registered": {"fr": "Enregistré le", "en": "Registered"},
    "adm_no_devices": {"fr": "Aucun appareil.", "en": "No devices."},
    "adm_sites_intro": {
        "fr": "Les sites connus de l'entrepôt : le site (--site) de chaque chargement FHIR, avec ses "
              "patients, et les établissements et services (care_site) décrits par les données. "
              "Lecture seule.",
        "en": "The sites the warehouse knows: the site (--site) of each FHIR load, with its persons, and the "
              "care sites (care_site) the data describe. Read-only."},
    "adm_site": {"fr": "Site", "en": "Site"},
    "adm_persons_total": {"fr": "Patients dans l'entrepôt (un patient de plusieurs sites compte une fois)",
                          "en": "Persons in the warehouse (one known to several sites counts once)"},
    "adm_care_sites": {"fr": "Établissements et services (care_site)", "en": "Care sites (care_site)"},
    "adm_name": {"fr": "Nom", "en": "Name"},
    "adm_place": {"fr": "Lieu de soins", "en": "Place of service"},
    "adm_shown": {"fr": "lignes affichées sur", "en": "rows shown of"},
    "adm_no_sites": {"fr": "Aucun site : rien n'a encore été chargé (hdhub ingest fhir --site …).",
                     "en": "No site yet: nothing has been loaded (hdhub ingest fhir --site …)."},
    "adm_no_care_sites": {"fr": "Aucun établissement dans les données.", "en": "No care site in the data."},
    "adm_warehouse_unavailable": {"fr": "Entrepôt indisponible :", "en": "Warehouse unavailable:"},
    "adm_policies_intro": {
        "fr": "Ce que l'archive d'imagerie conserve, combien de temps et où, par catégorie d'objets : "
              "configuration en vigueur (valeurs par défaut comprises). Lecture seule.",
        "en": "What the imaging archive keeps, how long and where, per category of objects: the settings in "
              "force (defaults included). Read-only."},
    "adm_category": {"fr": "Catégorie", "en": "Category"},
    "adm_object_keys": {"fr": "Clés d'objets", "en": "Object keys"},
    "adm_retention": {"fr": "Conservation (verrou)", "en": "Retention (lock)"},
    "adm_years_after": {"fr": "ans après le dernier séjour", "en": "years after the last stay"},
    "adm_no_lock": {"fr": "aucun verrou", "en": "no lock"},
    "adm_mode": {"fr": "Mode", "en": "Mode"},
    "adm_cold": {"fr": "Vers la classe COLD", "en": "To the COLD class"},
    "adm_purge": {"fr": "Purge des objets rejetés", "en": "Purge of rejected objects"},
    "adm_after": {"fr": "après", "en": "after"},
    "adm_days": {"fr": "jours", "en": "days"},
    "adm_mode_note": {
        "fr": "GOVERNANCE : seule la purge privilégiée des objets rejetés peut retirer un objet verrouillé ; "
              "COMPLIANCE : personne, jusqu'à la date.",
        "en": "GOVERNANCE: only the privileged purge of rejected objects may remove a locked object; "
              "COMPLIANCE: nobody, until the date."},
    "adm_lifecycle": {"fr": "Règles de cycle de vie des objets", "en": "Object lifecycle rules"},
    "adm_prefix": {"fr": "Préfixe", "en": "Prefix"},
    "adm_transition": {"fr": "Transition", "en": "Transition"},
    "adm_expiration": {"fr": "Suppression (sauf verrou)", "en": "Deletion (unless locked)"},
    "adm_no_lifecycle": {"fr": "Aucune règle ([[objects.lifecycle]] n'est pas renseigné).",
                         "en": "No rule ([[objects.lifecycle]] is not set)."},
    "adm_how_change": {"fr": "Pour les modifier", "en": "How to change them"},
    "adm_how_change_text": {
        "fr": "Modifier le fichier de configuration (sections [imaging.policies.<catégorie>] et "
              "[[objects.lifecycle]]), puis redémarrer le serveur. Une catégorie absente du fichier garde sa "
              "valeur par défaut. hdhub dicom apply-policies (chaque jour, par cron ou un timer systemd) "
              "applique les politiques aux objets déjà stockés ; hdhub objects lifecycle run applique les "
              "règles de cycle de vie.",
        "en": "Edit the configuration file (sections [imaging.policies.<category>] and "
              "[[objects.lifecycle]]), then restart the server. A category left out of the file keeps its "
              "default. hdhub dicom apply-policies (daily, from cron or a systemd timer) applies the "
              "policies to the objects already stored; hdhub objects lifecycle run applies the lifecycle "
              "rules."},
    "adm_config_file": {"fr": "Fichier de configuration :", "en": "Configuration file:"},
    "adm_example": {"fr": "Exemple", "en": "Example"},
})  # fmt: skip


def _admin(request: Request, action: str = "users:manage") -> Principal | Response:
    """The signed-in admin allowed ``action`` too (the administration is the admins' only), or the
    response to send instead: /login without a session, the 403 page for any other role."""
    principal = signed_in(request, "users:manage")
    if not isinstance(principal, Principal) or action == "users:manage":
        return principal
    decision = decide(principal, action)
    if not decision.allowed:
        return forbidden_page(request, principal)
    request.state.decision = decision
    return principal


def _page(
    request: Request, template: str, principal: Principal, status: int = 200, **context: Any
) -> Response:
    response = render(request, template, principal, status=status, **context)
    response.headers["Cache-Control"] = "no-store"  # accounts, tokens, maybe a password shown once
    return response


def _when(moment: Any) -> str:
    return aware(moment).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


# ---------------------------------------------------------------------------------------- overview


@router.get("/admin")
def admin_page(request: Request) -> Response:
    from hdhub.imaging.policies import effective

    principal = _admin(request)
    if not isinstance(principal, Principal):
        return principal
    hub = get_hub(request)
    with Session(hub.catalog) as s:
        users = s.scalar(select(func.count()).select_from(User)) or 0
        disabled = s.scalar(select(func.count()).select_from(User).where(User.disabled.is_(True))) or 0
        tokens = token_service.count_live_tokens(s)
        devices = s.scalar(
            select(func.count()).select_from(MonitoringDevice).where(MonitoringDevice.revoked_at.is_(None))
        )
    sites = _sites(hub.settings.warehouse_url_resolved)
    counts = {
        "users": users, "disabled": disabled, "tokens": tokens, "devices": devices or 0,
        "sites": None if sites["unavailable"] else len(sites["sites"]),
        "categories": len(effective(hub.settings)), "lifecycle": len(hub.settings.objects.lifecycle),
    }  # fmt: skip
    return _page(request, "admin.html.j2", principal, counts=counts)


# ------------------------------------------------------------------------------------------- users


def _users_page(request: Request, principal: Principal, *, status: int = 200, error: str | None = None,
                secret: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                done: str | None = None, done_user: str | None = None) -> Response:  # fmt: skip
    with Session(get_hub(request).catalog) as s:
        users = [
            {
                "id": u.id, "name": u.username, "display_name": u.display_name or "",
                "roles": u.role_names, "disabled": u.disabled, "created": _when(u.created_at)[:10],
                "local": u.password_hash is not None,
            }
            for u in user_service.list_users(s)
        ]  # fmt: skip
    if done_user not in {u["name"] for u in users}:
        done = None  # a message only about an account that exists
    return _page(request, "admin_users.html.j2", principal, status=status, users=users, roles=PERSON_ROLES,
                 error=error, secret=secret, form=form or {"username": "", "display_name": "", "roles": []},
                 done=done, done_user=done_user, password_min=MIN_PASSWORD_LENGTH,
                 password_max=MAX_PASSWORD_LENGTH)  # fmt: skip


@router.get("/admin/users")
def users_page(request: Request, done: str = "", user: str = "") -> Response:
    principal = _admin(request, "users:read")
    if not isinstance(principal, Principal):
        return principal
    return _users_page(request, principal, done=done if done in USER_DONE else None, done_user=user)


def _checked_roles(request: Request, roles: list[str] | None) -> tuple[list[str], str | None]:
    """The roles ticked, or the page's message why not: an account holds at least one role, and
    only roles of persons (never "device", nor a name unknown)."""
    wanted = sorted({r for r in roles or [] if r})
    unknown = user_service.refused_roles(wanted)  # the API's rule (users.check_roles)
    if unknown:
        return wanted, f"{say(language(request), 'adm_bad_role')} {', '.join(r[:40] for r in unknown[:5])}"
    if not wanted:
        return wanted, say(language(request), "adm_no_role")
    return wanted, None


def _refused(request: Request, principal: Principal, status: int, message: str,
             form: dict[str, Any] | None = None) -> Response:  # fmt: skip
    return _users_page(request, principal, status=status, form=form,
                       error=f"{message} {say(language(request), 'adm_nothing_stored')}")  # fmt: skip


@router.post("/admin/users")
def create_user_page(
    request: Request,
    username: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    display_name: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    roles: Annotated[list[str] | None, Form()] = None,
    password: Annotated[str, Form(max_length=FIELD_MAX)] = "",
) -> Response:
    """Create an account; without a password typed in, one is generated and shown once."""
    same_origin(request)
    principal = _admin(request)
    if not isinstance(principal, Principal):
        return principal
    username, display = username.strip(), display_name.strip()
    wanted, problem = _checked_roles(request, roles)
    audit_context(request, resource_type="user", resource_id=username[:150],
                  detail={"roles": [r[:40] for r in wanted[:10]]})  # fmt: skip
    form = {"username": username, "display_name": display, "roles": wanted}  # never the password
    if problem:
        return _refused(request, principal, 422, problem, form)
    if len(password) > PASSWORD_MAX:
        return _refused(request, principal, 422, say(language(request), "adm_password_long"), form)
    generated = password == ""
    password = password or user_service.generate_password()
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            user_service.create_user(s, username, wanted, password=password, display_name=display or None)
    except HdhubError as exc:
        return _refused(request, principal, exc.status, exc.message, form)
    if generated:
        return _users_page(request, principal, secret={"user": username, "password": password},
                           done="created", done_user=username)  # fmt: skip
    return RedirectResponse(f"/admin/users?done=created&user={quote(username)}", status_code=303)


def _update(
    request: Request, username: str, done: str, problem: str | None = None, **change: Any
) -> Response:
    """One change to an account, by the same service function as the API's PATCH (``problem``:
    the form's input was refused already, said once the caller is known to be an admin)."""
    same_origin(request)
    principal = _admin(request)
    if not isinstance(principal, Principal):
        return principal
    roles = change.get("roles")
    audit_context(request, resource_type="user", resource_id=username[:150],
                  detail={"roles": [r[:40] for r in roles[:10]]} if roles is not None else None)  # fmt: skip
    if problem:
        return _refused(request, principal, 422, problem)
    own = username == principal.name
    if own and change.get("disabled"):
        return _refused(request, principal, 409, say(language(request), "adm_self_disable"))
    if own and roles is not None and "admin" in principal.roles and "admin" not in roles:
        return _refused(request, principal, 409, say(language(request), "adm_self_admin"))
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            user_service.update_user(s, username, actor=principal.name, **change)
    except HdhubError as exc:
        return _refused(request, principal, exc.status, exc.message)
    if "password" in change:
        return _users_page(request, principal, secret={"user": username, "password": change["password"]})
    return RedirectResponse(f"/admin/users?done={done}&user={quote(username)}", status_code=303)


@router.post("/admin/users/{username}/roles")
def roles_page(
    request: Request, username: str, roles: Annotated[list[str] | None, Form()] = None
) -> Response:
    wanted, problem = _checked_roles(request, roles)
    return _update(request, username, "roles", problem, roles=wanted)


@router.post("/admin/users/{username}/disable")
def disable_page(request: Request, username: str) -> Response:
    return _update(request, username, "disabled", disabled=True)


@router.post("/admin/users/{username}/enable")
def enable_page(request: Request, username: str) -> Response:
    return _update(request, username, "enabled", disabled=False)


@router.post("/admin/users/{username}/password")
def password_page(request: Request, username: str) -> Response:
    """A new generated password for the account, shown once."""
    return _update(request, username, "password", password=user_service.generate_password())


# ------------------------------------------------------------------------------------------ tokens


def _tokens_page(request: Request, principal: Principal, *, show_all: bool = False, status: int = 200,
                 error: str | None = None, done: str | None = None) -> Response:  # fmt: skip
    with Session(get_hub(request).catalog) as s:
        tokens = [
            {
                "id": t.id, "user": t.user, "name": t.name, "kind": t.kind, "prefix": t.prefix,
                "project": t.project, "created": _when(t.created_at), "expires": _when(t.expires_at),
                "last_used": _when(t.last_used_at), "status": t.status,
            }
            for t in token_service.token_overview(s, include_inactive=show_all, limit=LIST_LIMIT)
        ]  # fmt: skip
        stmt = select(MonitoringDevice).order_by(MonitoringDevice.created_at.desc()).limit(LIST_LIMIT)
        if not show_all:
            stmt = stmt.where(MonitoringDevice.revoked_at.is_(None))
        devices = [
            {
                "id": d.device_id, "kind": d.kind or "", "patient": d.person_key[:10],
                "created": _when(d.created_at), "status": "revoked" if d.revoked_at else "active",
            }
            for d in s.scalars(stmt)
        ]  # fmt: skip
    return _page(request, "admin_tokens.html.j2", principal, status=status, tokens=tokens, devices=devices,
                 show_all=show_all, error=error, done=done)  # fmt: skip


@router.get("/admin/tokens")
def tokens_page(request: Request, all: str = "", done: str = "") -> Response:
    principal = _admin(request, "tokens:manage")
    if not isinstance(principal, Principal):
        return principal
    return _tokens_page(request, principal, show_all=all == "1", done=done if done in TOKEN_DONE else None)


def _revoke(
    request: Request, action: str, revoke: Callable[[Session], dict[str, Any]], done: str
) -> Response:
    same_origin(request)
    principal = _admin(request, action)
    if not isinstance(principal, Principal):
        return principal
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            audit_context(request, **revoke(s))
    except HdhubError as exc:
        return _tokens_page(request, principal, status=exc.status, error=exc.message)
    return RedirectResponse(f"/admin/tokens?done={done}", status_code=303)


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token_page(request: Request, token_id: int) -> Response:
    """Revoke an API token or a web session: it is refused from the next request on."""
    audit_context(request, resource_type="api_token", resource_id=str(token_id))

    def revoke(s: Session) -> dict[str, Any]:
        row = token_service.revoke_token_id(s, token_id)
        return {"detail": {"user": row.user.username}}

    return _revoke(request, "tokens:manage", revoke, "token")


@router.post("/admin/devices/{device_id}/revoke")
def revoke_device_page(request: Request, device_id: str) -> Response:
    """Revoke a patient's device: its token and its MQTT messages are refused from now on."""
    audit_context(request, resource_type="device", resource_id=device_id[:64])

    def revoke(s: Session) -> dict[str, Any]:
        revoke_device(s, device_id)
        person = s.scalar(select(MonitoringDevice.person_key).where(MonitoringDevice.device_id == device_id))
        return {"patient_id": person}

    return _revoke(request, "monitoring:manage", revoke, "device")


# ------------------------------------------------------------------------------------------- sites


def _sites(url: str) -> dict[str, Any]:
    """Persons per site (``person_site``) and the care sites, read-only; a warehouse not
    created yet, or without these tables, has no sites; a busy one says why."""
    from hdhub.warehouse.connection import WarehouseUnavailable, read_only

    found: dict[str, Any] = {
        "sites": [],
        "persons": None,
        "care_sites": [],
        "care_total": 0,
        "unavailable": None,
    }
    try:
        with read_only(url) as con:
            db = con.con
            listed = db.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_name IN ('person', 'person_site', 'care_site')"
            ).fetchall()
            tables = {row[0] for row in listed}
            if "person_site" in tables:  # one row per person and site (the loads add each pair once)
                rows = db.execute(
                    "SELECT site, count(*) FROM person_site GROUP BY site ORDER BY site"
                ).fetchall()
                found["sites"] = [{"site": site, "persons": n} for site, n in rows]
            if "person" in tables:
                found["persons"] = db.execute("SELECT count(*) FROM person").fetchone()[0]
            if "care_site" in tables:
                found["care_total"] = db.execute("SELECT count(*) FROM care_site").fetchone()[0]
                rows = db.execute(
                    "SELECT care_site_id, care_site_name, care_site_source_value, "
                    "place_of_service_source_value FROM care_site "
                    f"ORDER BY care_site_name NULLS LAST, care_site_id LIMIT {CARE_SITE_LIMIT}"
                ).fetchall()
                found["care_sites"] = [
                    {"id": i, "name": name or "", "source": source or "", "place": place or ""}
                    for i, name, source, place in rows
                ]
    except WarehouseUnavailable as exc:
        found["unavailable"] = exc.message
    return found


@router.get("/admin/sites")
def sites_page(request: Request) -> Response:
    principal = _admin(request, "warehouse:read")
    if not isinstance(principal, Principal):
        return principal
    found = _sites(get_hub(request).settings.warehouse_url_resolved)
    return _page(request, "admin_sites.html.j2", principal, **found)


# ---------------------------------------------------------------------------------------- policies


@router.get("/admin/policies")
def policies_page(request: Request) -> Response:
    from hdhub.imaging.policies import effective, prefix

    principal = _admin(request)
    if not isinstance(principal, Principal):
        return principal
    settings = get_hub(request).settings
    policies = [
        {
            "category": category, "prefix": prefix(category), "years": p.retention_years,
            "mode": p.retention_mode, "cold": _number(p.cold_after_days),
            "purge": _number(p.purge_rejected_after_days),
        }
        for category, p in sorted(effective(settings).items())
    ]  # fmt: skip
    lifecycle = [
        {
            "prefix": rule.prefix, "transition": _number(rule.transition_after_days),
            "storage_class": rule.storage_class, "expire": _number(rule.expire_after_days),
        }
        for rule in settings.objects.lifecycle
    ]  # fmt: skip
    return _page(request, "admin_policies.html.j2", principal, policies=policies, lifecycle=lifecycle,
                 config_file=str(settings.home / CONFIG_FILE))  # fmt: skip
