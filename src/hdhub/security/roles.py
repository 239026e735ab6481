"""The roles of hdhub and what each one may do (deny by default)."""

from __future__ import annotations

ROLES: dict[str, str] = {
    "admin": "Runs the platform: users, tokens, sites, storage policies. No research data access by default.",
    "data_engineer": "Loads and checks data: OMOP and FHIR ingestion, objects, data-quality reports.",
    "clinician": "Reads patients' records and images for care.",
    "researcher": "Counts patients, requests projects, works in approved project workspaces.",
    "committee": "Reviews project requests: comments, votes, approves a perimeter or rejects.",
    "dpo": "Data protection officer: audit log, opposition registry, retention, exports.",
    "device": "A patient's device sending vitals (bound to one patient).",
}

# action -> roles allowed. An action missing here is denied to everyone.
POLICY: dict[str, frozenset[str]] = {
    # identities
    "users:read": frozenset({"admin"}),
    "users:manage": frozenset({"admin"}),
    "tokens:manage": frozenset({"admin"}),
    "tokens:self": frozenset(ROLES) - {"device"},
    # audit
    "audit:read": frozenset({"admin", "dpo"}),
    "audit:verify": frozenset({"admin", "dpo"}),
    "audit:export": frozenset({"admin", "dpo"}),
    # patients' identifying data (the identity store): care, and the DPO for access requests
    "identities:read": frozenset({"clinician", "dpo"}),
    # warehouse
    "warehouse:load": frozenset({"admin", "data_engineer"}),
    "warehouse:read": frozenset({"admin", "data_engineer"}),
    # cohorts: counts (exact for roles that already read the warehouse), saved definitions,
    # materialised cohorts; the opposition registry belongs to the DPO
    "cohorts:count": frozenset({"admin", "data_engineer", "researcher"}),
    "cohorts:count-exact": frozenset({"admin", "data_engineer"}),
    "cohorts:define": frozenset({"data_engineer", "researcher"}),
    "cohorts:materialise": frozenset({"admin", "data_engineer"}),
    "oppositions:manage": frozenset({"admin", "dpo"}),
    # research projects: clinicians and researchers request, the committee reviews and decides
    "projects:request": frozenset({"clinician", "researcher"}),
    # data engineers and admins read approved projects only (the perimeter they provision)
    "projects:read": frozenset({"admin", "clinician", "committee", "data_engineer", "dpo", "researcher"}),
    "projects:review": frozenset({"committee"}),
    "projects:count": frozenset({"clinician", "researcher"}),  # members of an approved project
    # project workspaces: data engineers provision an approved perimeter; members take project
    # tokens and work inside (the token names the project); output checkers (the committee)
    # release results from the airlock
    "workspaces:provision": frozenset({"admin", "data_engineer"}),
    "workspaces:token": frozenset({"clinician", "researcher"}),
    "workspaces:read": frozenset({"clinician", "researcher"}),
    "workspaces:release": frozenset({"clinician", "researcher"}),
    "releases:review": frozenset({"committee"}),
    "releases:read": frozenset({"clinician", "committee", "researcher"}),  # checkers; members once released
    "workspaces:expire": frozenset({"admin"}),
    # remote monitoring: devices send vitals; clinicians read and acknowledge alerts; data
    # engineers register devices, enrol patients and read the rejection counts
    "vitals:write": frozenset({"device"}),
    "alerts:read": frozenset({"clinician"}),
    "alerts:ack": frozenset({"clinician"}),
    "monitoring:manage": frozenset({"admin", "data_engineer"}),
    # imaging archive: clinicians read images for care; data engineers and PACS accounts store
    "imaging:read": frozenset({"clinician"}),
    "imaging:write": frozenset({"admin", "data_engineer"}),
    # objects
    "objects:read": frozenset({"admin", "data_engineer"}),
    "objects:write": frozenset({"admin", "data_engineer"}),
    "objects:delete": frozenset({"admin", "data_engineer"}),
    "objects:retention": frozenset({"admin", "dpo"}),
    "objects:lifecycle": frozenset({"admin", "data_engineer"}),
    "objects:rotate-key": frozenset({"admin"}),
    # platform
    "metrics:read": frozenset({"admin"}),
    "system:serve": frozenset({"admin"}),
}
