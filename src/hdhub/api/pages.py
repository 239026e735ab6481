"""The web interface's plumbing: templates, the two languages, the sign-in session, the menu.

Pages are server-rendered (Jinja2, no build step). A browser signs in with a local account
at ``/login``; the session is an ordinary hdhub API token (expiring, revocable, dead with its
user) kept in an ``HttpOnly``, ``SameSite=Strict`` cookie, so no other site can make the
browser send it. Pages decide with the same policy as the API; the menu shows only what the
signed-in roles may do. French by default; ``?lang=en`` (remembered in a cookie) or the
browser's Accept-Language switch to English.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hdhub.api.deps import get_hub
from hdhub.errors import AuthenticationError, Forbidden
from hdhub.security.authz import decide
from hdhub.security.principal import Principal
from hdhub.security.tokens import check_token
from hdhub.security.users import principal_of

SESSION_COOKIE = "hdhub_session"
LANG_COOKIE = "hdhub_lang"
LANGS = ("fr", "en")

TEXT: dict[str, dict[str, str]] = {
    "app": {"fr": "hdhub — plateforme de données de santé", "en": "hdhub — health data platform"},
    "sign_in": {"fr": "Connexion", "en": "Sign in"},
    "sign_out": {"fr": "Déconnexion", "en": "Sign out"},
    "username": {"fr": "Identifiant", "en": "User name"},
    "password": {"fr": "Mot de passe", "en": "Password"},
    "bad_login": {"fr": "Identifiant ou mot de passe incorrect.", "en": "Invalid user name or password."},
    "slow_down": {
        "fr": "Trop d'échecs de connexion pour cet identifiant : réessayez dans quelques minutes.",
        "en": "Too many failed sign-ins under this user name: try again in a few minutes.",
    },
    "home": {"fr": "Accueil", "en": "Home"},
    "alerts": {"fr": "Alertes de télésurveillance", "en": "Remote-monitoring alerts"},
    "register": {"fr": "Registre public des projets", "en": "Public register of projects"},
    "api_docs": {"fr": "Documentation de l'API", "en": "API documentation"},
    "welcome": {"fr": "Bienvenue", "en": "Welcome"},
    "roles": {"fr": "Rôles", "en": "Roles"},
    "severity": {"fr": "Gravité", "en": "Severity"},
    "patient": {"fr": "Patient", "en": "Patient"},
    "rule": {"fr": "Règle", "en": "Rule"},
    "message": {"fr": "Constat", "en": "Finding"},
    "count": {"fr": "Occurrences", "en": "Count"},
    "last": {"fr": "Dernière valeur", "en": "Latest value"},
    "status": {"fr": "Statut", "en": "Status"},
    "acknowledge": {"fr": "Acquitter", "en": "Acknowledge"},
    "open": {"fr": "ouverte", "en": "open"},
    "acknowledged": {"fr": "acquittée", "en": "acknowledged"},
    "no_alerts": {"fr": "Aucune alerte.", "en": "No alerts."},
    "filter": {"fr": "Filtrer", "en": "Filter"},
    "all": {"fr": "toutes", "en": "all"},
    "forbidden": {
        "fr": "Accès refusé : votre rôle ne le permet pas.",
        "en": "Forbidden: your role does not allow it.",
    },
    "language": {"fr": "English", "en": "Français"},
    "projects": {"fr": "Projets de recherche", "en": "Research projects"},
    "project": {"fr": "Projet", "en": "Project"},
    "no_projects": {"fr": "Aucun projet.", "en": "No projects."},
    "pi": {"fr": "Investigateur principal", "en": "Principal investigator"},
    "submitted": {"fr": "Soumis", "en": "Submitted"},
    "expires": {"fr": "Fin", "en": "Expires"},
    "purpose": {"fr": "Finalité", "en": "Purpose"},
    "legal_basis": {"fr": "Base légale", "en": "Legal basis"},
    "members": {"fr": "Membres", "en": "Members"},
    "cohort": {"fr": "Cohorte", "en": "Cohort"},
    "data": {"fr": "Données demandées", "en": "Data requested"},
    "table": {"fr": "Table", "en": "Table"},
    "columns": {"fr": "Colonnes", "en": "Columns"},
    "justification": {"fr": "Justification", "en": "Justification"},
    "reviews": {"fr": "Avis du comité", "en": "Committee reviews"},
    "your_review": {"fr": "Votre avis", "en": "Your review"},
    "comment": {"fr": "Commentaire", "en": "Comment"},
    "vote": {"fr": "Vote", "en": "Vote"},
    "send": {"fr": "Envoyer", "en": "Send"},
    "decision": {"fr": "Décision", "en": "Decision"},
    "decide": {"fr": "Décider", "en": "Decide"},
    "audit": {"fr": "Journal d'audit", "en": "Audit log"},
    "user": {"fr": "Utilisateur", "en": "User"},
    "since": {"fr": "Du", "en": "From"},
    "until": {"fr": "Au", "en": "To"},
    "verify": {"fr": "Vérifier la chaîne", "en": "Verify the chain"},
    "export": {"fr": "Exporter (ECS)", "en": "Export (ECS)"},
    "events": {"fr": "événements", "en": "events"},
    "when": {"fr": "Date", "en": "When"},
    "action": {"fr": "Action", "en": "Action"},
    "outcome": {"fr": "Résultat", "en": "Outcome"},
    "resource": {"fr": "Ressource", "en": "Resource"},
    "vitals": {"fr": "Constantes du patient", "en": "Patient's vitals"},
    "readings": {"fr": "Valeurs", "en": "Values"},
    "no_values": {"fr": "Aucune valeur sur 30 jours.", "en": "No values in 30 days."},
    "heart_failure": {"fr": "insuffisance cardiaque", "en": "heart failure"},
    "chart_bp": {"fr": "Pression artérielle", "en": "Blood pressure"},
    "chart_hr": {"fr": "Fréquence cardiaque", "en": "Heart rate"},
    "chart_spo2": {"fr": "Saturation en oxygène", "en": "Oxygen saturation"},
    "chart_weight": {"fr": "Poids", "en": "Weight"},
    "warehouse": {"fr": "Entrepôt de données", "en": "Data warehouse"},
    "records": {"fr": "Enregistrements par table", "en": "Records per table"},
    "rows": {"fr": "Lignes", "en": "Rows"},
    "unmapped": {"fr": "Non codés (concept 0)", "en": "Unmapped (concept 0)"},
    "sites": {"fr": "Patients par site", "en": "Persons per site"},
    "persons": {"fr": "Patients", "en": "Persons"},
    "visits": {"fr": "séjours", "en": "visits"},
    "visits_per_year": {"fr": "Séjours par an et par site", "en": "Visits per year and site"},
    "unmapped_codes": {"fr": "Codes non alignés les plus fréquents", "en": "Most frequent unmapped codes"},
    "source_value": {"fr": "Code source", "en": "Source code"},
    "data_quality": {"fr": "Qualité des données (dernier rapport)", "en": "Data quality (latest report)"},
    "passed": {"fr": "réussis", "en": "passed"},
    "failed": {"fr": "en échec", "en": "failed"},
    "errors": {"fr": "erreurs", "en": "errors"},
    "no_dq": {"fr": "Aucun rapport : lancer hdhub dq.", "en": "No report yet: run hdhub dq."},
    "workspace": {"fr": "Espace de travail", "en": "Workspace"},
    "get_token": {"fr": "Obtenir un jeton de projet (30 jours)", "en": "Get a project token (30 days)"},
    "token_once": {"fr": "Votre jeton, affiché une seule fois :", "en": "Your token, shown once:"},
    "releases": {"fr": "Demandes de sortie de résultats", "en": "Release requests"},
    "file": {"fr": "Fichier", "en": "File"},
    "checks": {"fr": "Contrôles automatiques", "en": "Automatic checks"},
    "approve": {"fr": "Approuver", "en": "Approve"},
    "reject": {"fr": "Refuser", "en": "Reject"},
    "cohorts": {"fr": "Explorateur de cohortes", "en": "Cohort explorer"},
    "imaging": {"fr": "Imagerie", "en": "Imaging"},
    "admin": {"fr": "Administration", "en": "Administration"},
    "new_alert": {"fr": "Nouvelle alerte", "en": "New alert"},
    "reload": {"fr": "Actualiser la liste", "en": "Reload the list"},
}


def add_texts(texts: dict[str, dict[str, str]]) -> None:
    """A page module's own texts, each in both languages; a key may be defined once only."""
    for key, value in texts.items():
        if key in TEXT and TEXT[key] != value:
            raise ValueError(f"page text {key!r} is defined twice")
        if set(value) != set(LANGS):
            raise ValueError(f"page text {key!r} needs exactly {LANGS}")
        TEXT[key] = value


# The menu: (text key, link, action the signed-in roles need; None for everyone)
MENU = (
    ("warehouse", "/warehouse", "warehouse:read"),
    ("cohorts", "/cohorts", "cohorts:count"),
    ("imaging", "/imaging", "imaging:read"),
    ("alerts", "/alerts", "alerts:read"),
    ("projects", "/projects", "projects:read"),
    ("audit", "/audit", "audit:read"),
    ("admin", "/admin", "users:manage"),
    ("register", "/register", None),
    ("api_docs", "/docs", None),
)

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("hdhub.api", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


def language(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGS:
        return asked  # type: ignore[return-value]
    accept = request.headers.get("accept-language", "").lower()
    return "en" if accept.startswith("en") else "fr"


def say(lang: str, key: str, **values: Any) -> str:
    """One page text in ``lang`` (``fr`` or ``en``), its ``{placeholders}`` filled."""
    text = TEXT[key][lang]
    return text.format(**values) if values else text


def session_principal(request: Request) -> Principal | None:
    """The signed-in user of this browser, or None (an expired or revoked session counts as none)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            live = check_token(s, secret)
        if live.project is not None:
            return None  # project tokens never sign a browser in
        source = request.client.host if request.client else None
        principal = principal_of(live.username, live.roles, live.user_id, "web", source, None)
    except AuthenticationError:
        return None
    request.state.principal = principal  # the audit event names who
    return principal


def render(request: Request, template: str, principal: Principal | None, status: int = 200,
           **context: Any) -> HTMLResponse:  # fmt: skip
    lang = language(request)
    menu = [
        {"text": TEXT[key][lang], "href": href}
        for key, href, action in MENU
        if action is None or (principal is not None and decide(principal, action).allowed)
    ]
    html = _env.get_template(template).render(
        t={key: value[lang] for key, value in TEXT.items()}, lang=lang, other="en" if lang == "fr" else "fr",
        principal=principal, menu=menu, path=request.url.path, **context,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86_400, samesite="strict")
    return response


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (on top of the SameSite=Strict cookie). "null" is
    another site too: a browser sends it for a cross-site form redirected here (307), which
    could sign a victim into an attacker's account."""
    origin = request.headers.get("origin")
    if origin and (origin == "null" or urlsplit(origin).netloc != request.headers.get("host")):
        raise Forbidden("a form posted from another site")


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def forbidden_page(request: Request, principal: Principal) -> Response:
    return render(request, "message.html.j2", principal, status=403, heading="403",
                  text=say(language(request), "forbidden"))  # fmt: skip


def signed_in(request: Request, action: str) -> Principal | Response:
    """The signed-in principal allowed ``action``, or the response to send instead: to
    ``/login`` without a session, a 403 page when the roles do not allow it."""
    principal = session_principal(request)
    if principal is None:
        return to_login(request)
    decision = decide(principal, action)
    if not decision.allowed:
        return forbidden_page(request, principal)
    request.state.decision = decision
    return principal
