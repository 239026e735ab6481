"""Catalog models of the foundation: identities, roles, tokens, audit log.

Timestamps that enter the audit hash are stored as fixed-width ISO-8601 UTC text
(``2026-11-24T10:00:00.000000Z``): byte-identical on SQLite and PostgreSQL, and
ordered as text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hdhub.catalog.base import Base, BigId


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A catalog datetime as UTC-aware: SQLite returns them naive, PostgreSQL aware (all UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    # argon2id hash; NULL for accounts that only sign in through OIDC.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def role_names(self) -> list[str]:
        return sorted(r.role for r in self.roles)


class LoginFailure(Base):
    """Failed password sign-ins under one user name, whether an account has it or not (the same
    answer either way: the delay reveals no account). See ``security.users.authenticate``."""

    __tablename__ = "login_failures"

    username: Mapped[str] = mapped_column(String(150), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))

    user: Mapped[User] = relationship(back_populates="roles")


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the secret is shown once at issue."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings to recognise a token
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A project token reads that project's workspace and nothing else (issue 6).
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)

    user: Mapped[User] = relationship(lazy="joined")


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit log.

    ``seq`` is assigned by the appender (previous + 1, no gaps) and ``hash`` is the
    SHA-256 of ``prev_hash`` and the canonical JSON of the other fields.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_patient_ts", "patient_id", "ts"),
        Index("ix_audit_events_actor_ts", "actor", "ts"),
        Index("ix_audit_events_project_ts", "project_id", "ts"),
        Index("ix_audit_events_action_ts", "action", "ts"),  # e.g. the latest warehouse loads
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(27), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    actor_type: Mapped[str] = mapped_column(String(20))  # user | token | oidc | cli | system | anonymous
    role: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str | None] = mapped_column(String(100))
    resource_id: Mapped[str | None] = mapped_column(String(500))
    patient_id: Mapped[str | None] = mapped_column(String(200))
    project_id: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20))  # success | failure | denied
    source: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text)  # canonical JSON object
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """An Ed25519 signature over (seq, hash) of an audit entry: the chain up to it is sealed."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(27))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


class PatientIdentity(Base):
    """A patient's directly identifying data (names, addresses, telecom, identifiers, birth
    date), kept apart from the warehouse and encrypted: AES-256-GCM under a per-row data key
    wrapped by the KEK, the row's ``patient_key`` as associated data.

    ``patient_key`` is the keyed hash of (site, Patient id) and ``person_key`` the warehouse
    person's ``person_source_value``: the only links between identity and clinical data.
    """

    __tablename__ = "patient_identities"

    patient_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_key: Mapped[str] = mapped_column(String(40), index=True)
    site: Mapped[str] = mapped_column(String(40))
    kek_id: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)  # nonce (12) + wrapped data key (48)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PatientIdentifierIndex(Base):
    """Blind index: keyed hash of each (system, value) identifier -> patient, so a patient
    can be found by IPP or INS without decrypting every row."""

    __tablename__ = "patient_identifier_index"

    identifier_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    patient_key: Mapped[str] = mapped_column(
        ForeignKey("patient_identities.patient_key", ondelete="CASCADE"), primary_key=True
    )


# --- imaging archive: the index of DICOM instances (the files themselves are objects) ---------
class DicomStudy(Base):
    """Study-level attributes (PS3.18 QIDO-RS study matching and return keys)."""

    __tablename__ = "dicom_studies"
    __table_args__ = (
        # Prefix wildcards (DOE*) use it: GLOB on SQLite, LIKE with text_pattern_ops on PostgreSQL.
        Index(
            "ix_dicom_studies_patient_name",
            "patient_name",
            postgresql_ops={"patient_name": "text_pattern_ops"},
        ),
        # Study searches are answered newest first: a date range reads this index backwards and
        # stops at the page's end instead of sorting every match.
        Index("ix_dicom_studies_study_date_uid", "study_date", "study_uid"),
        # A patient is (PatientID, IssuerOfPatientID): each site issues its own numbers, so a
        # Patient ID alone may name two people. Serves Patient ID lookups alone as well.
        Index("ix_dicom_studies_patient_id_issuer", "patient_id", "issuer_of_patient_id"),
    )

    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    # IssuerOfPatientID (0010,0021), LO: who assigned the Patient ID (a site); NULL when unknown.
    issuer_of_patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(Text)
    patient_birth_date: Mapped[str | None] = mapped_column(String(8))
    patient_sex: Mapped[str | None] = mapped_column(String(16))
    study_date: Mapped[str | None] = mapped_column(String(8))
    study_time: Mapped[str | None] = mapped_column(String(16))
    accession_number: Mapped[str | None] = mapped_column(String(64), index=True)
    study_id: Mapped[str | None] = mapped_column(String(64))
    study_description: Mapped[str | None] = mapped_column(Text)
    referring_physician_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set when every instance of the study is rejected (IOCM): the study leaves every search.
    rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DicomSeries(Base):
    __tablename__ = "dicom_series"
    # A study's series, and ModalitiesInStudy matching, from one index (with the modality
    # alone, SQLite would read every series of that modality for each study).
    __table_args__ = (
        Index("ix_dicom_series_study_modality_rejected", "study_uid", "modality", "rejected_at"),
    )

    series_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(ForeignKey("dicom_studies.study_uid"))
    modality: Mapped[str | None] = mapped_column(String(16), index=True)
    series_number: Mapped[str | None] = mapped_column(String(16))
    series_description: Mapped[str | None] = mapped_column(Text)
    body_part_examined: Mapped[str | None] = mapped_column(String(64))
    rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DicomInstance(Base):
    """One stored instance: where its bytes are (as received), and its DICOM JSON metadata
    (bulk data left out) for WADO-RS /metadata without reading the object."""

    __tablename__ = "dicom_instances"
    # Partial: only rejected rows. A full index on rejected_at would tempt the planner to
    # answer "rejected_at IS NULL" (every visible row) from it instead of the UID indexes.
    # The UID indexes carry rejected_at, so that counting a page's visible instances reads
    # the index alone.
    __table_args__ = (
        Index(
            "ix_dicom_instances_rejected",
            "rejected_at",
            sqlite_where=text("rejected_at IS NOT NULL"),
            postgresql_where=text("rejected_at IS NOT NULL"),
        ),
        Index("ix_dicom_instances_study_uid_rejected", "study_uid", "rejected_at"),
        Index("ix_dicom_instances_series_uid_rejected", "series_uid", "rejected_at"),
    )

    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_uid: Mapped[str] = mapped_column(ForeignKey("dicom_series.series_uid"))
    study_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    instance_number: Mapped[str | None] = mapped_column(String(16))
    transfer_syntax_uid: Mapped[str | None] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigId)
    sha256: Mapped[str] = mapped_column(String(64))
    metadata_json: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Object lock set on its object (storage policy), so the policy job finds what to extend.
    retain_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # IHE IOCM rejection: hidden from every query at once, purged when the policy allows.
    rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rejection: Mapped[str | None] = mapped_column(String(100))  # code^scheme meaning


class MediaObject(Base):
    """A non-DICOM object of the imaging archive (surgical video, pathology slide, document):
    uploaded in resumable chunks, then one encrypted object under media/<category>/<id>."""

    __tablename__ = "media_objects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    # Who issued the Patient ID (a site, as IssuerOfPatientID): given at upload or taken from
    # the linked study; NULL when unknown.
    issuer_of_patient_id: Mapped[str | None] = mapped_column(String(64))
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    encounter_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(200))
    stay_date: Mapped[str | None] = mapped_column(String(8))  # YYYYMMDD, for the retention
    size: Mapped[int] = mapped_column(BigId)  # declared at creation (Upload-Length)
    received: Mapped[int] = mapped_column(BigId, default=0)
    status: Mapped[str] = mapped_column(String(16), default="uploading")  # uploading | assembling | available
    object_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str | None] = mapped_column(String(64))
    sha1: Mapped[str | None] = mapped_column(String(40))  # FHIR Attachment.hash
    retain_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CohortDefinitionRecord(Base):
    """A saved cohort definition: one row per version, per owner and name (never updated)."""

    __tablename__ = "cohort_definitions"
    __table_args__ = (UniqueConstraint("owner", "name", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[str] = mapped_column(Text)  # canonical JSON (hdhub.cohort/1)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the logic, names left out
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CohortCountLog(Base):
    """Counts shown with disclosure control, to rate-limit repeats of the same question."""

    __tablename__ = "cohort_count_log"
    __table_args__ = (Index("ix_cohort_count_log_actor_fp_at", "actor", "fingerprint", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the definition's logic
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResearchOpposition(Base):
    """A patient's objection to research use of their data (the opposition registry).

    ``person_key`` is the warehouse's keyed hash of the patient (``person_source_value``),
    never a clear identifier. A withdrawn objection keeps its row, with ``withdrawn_at``.
    """

    __tablename__ = "research_oppositions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Project(Base):
    """A research project request and, once approved, its perimeter (issue 6: governance)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(48), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(String(100))  # CNIL formality, e.g. MR-004
    pi: Mapped[str] = mapped_column(String(150))  # principal investigator: a clinician's username
    status: Mapped[str] = mapped_column(String(24), index=True)
    cohort_owner: Mapped[str | None] = mapped_column(String(200))
    cohort_name: Mapped[str | None] = mapped_column(String(200))
    cohort_version: Mapped[int | None] = mapped_column(Integer)
    data_request: Mapped[str] = mapped_column(Text)  # JSON: [{table, columns, justification}]
    date_from: Mapped[str | None] = mapped_column(String(10))  # YYYY-MM-DD
    date_to: Mapped[str | None] = mapped_column(String(10))
    duration_months: Mapped[int] = mapped_column(Integer)
    perimeter: Mapped[str | None] = mapped_column(Text)  # JSON, fixed by the committee's approval
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The workspace: its key (random, wrapped by the deployment's KEK; destroyed at deletion),
    # the current extract, and the expiry steps.
    workspace_key: Mapped[str | None] = mapped_column(Text)
    extract_version: Mapped[int | None] = mapped_column(Integer)
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "username"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(150))
    role: Mapped[str] = mapped_column(String(16))  # pi | member | external


class ProjectReview(Base):
    """A committee member's comment or vote on a project (never updated)."""

    __tablename__ = "project_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(8))  # comment | vote
    vote: Mapped[str | None] = mapped_column(String(16))  # approve | reject | changes
    text: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProjectExtract(Base):
    """One provisioning of a project's workspace: what was extracted (never updated)."""

    __tablename__ = "project_extracts"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    prefix: Mapped[str] = mapped_column(String(300))  # object-store prefix of its files
    persons: Mapped[int] = mapped_column(BigId)
    excluded_by_opposition: Mapped[int] = mapped_column(BigId)
    manifest: Mapped[str] = mapped_column(Text)  # JSON: tables, rows, columns, SHA-256 …
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProvisioningRun(Base):
    """One provisioning of a project's workspace, from the page or the CLI, as it goes: its
    status for every server worker and after a restart (see hdhub.workspaces.runs)."""

    __tablename__ = "provisioning_runs"
    __table_args__ = (
        # At most one running provisioning per project: the second start fails its INSERT, on
        # SQLite and PostgreSQL alike, whichever process or worker tries.
        Index(
            "uq_provisioning_runs_running",
            "project_id",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    started_by: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(8))  # web | cli
    state: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed | interrupted
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(String(2000))
    extract_version: Mapped[int | None] = mapped_column(Integer)  # reserved at its start; made if succeeded


class ReleaseRequest(Base):
    """A file a project member asks to take out of the workspace (the output airlock)."""

    __tablename__ = "release_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(255))
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigId)
    checks: Mapped[str] = mapped_column(Text)  # JSON: the automatic disclosure checks
    check_status: Mapped[str] = mapped_column(String(8))  # pass | fail | review
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | released | rejected
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReleaseReview(Base):
    """An output checker's decision on a release request (never updated)."""

    __tablename__ = "release_reviews"
    __table_args__ = (UniqueConstraint("release_id", "reviewer"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    vote: Mapped[str] = mapped_column(String(8))  # approve | reject
    text: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MonitoringDevice(Base):
    """A patient's device (watch, cuff, scale, oximeter), bound to one person (issue 7).

    Its token (``hdd_`` + 256 random bits) is stored as SHA-256, like API tokens."""

    __tablename__ = "monitoring_devices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True)  # serial / identifier on the wire
    person_key: Mapped[str] = mapped_column(String(64), index=True)  # warehouse person_source_value
    kind: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MonitoredPatient(Base):
    """A patient under remote monitoring, with their own thresholds (JSON, rule -> numbers)."""

    __tablename__ = "monitored_patients"

    person_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    heart_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    thresholds: Mapped[str] = mapped_column(Text, default="{}")
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VitalValue(Base):
    """One accepted value from a device: the recent window the detectors read, and the
    staging of OMOP ``measurement`` (``flushed_at`` once written there)."""

    __tablename__ = "vital_values"
    __table_args__ = (
        UniqueConstraint("device_id", "code", "effective_at"),  # a replay is a duplicate
        Index("ix_vital_values_person_code_time", "person_key", "code", "effective_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_key: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(16))  # LOINC
    value: Mapped[float] = mapped_column(Float)
    effective_at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC, fixed width: sorts as text
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(String(8))  # http | mqtt
    flushed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class VitalRejection(Base):
    """Why a device message (or one of its observations) was refused: counted, never data."""

    __tablename__ = "vital_rejections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(8))
    device_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    count: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(500))


class Alert(Base):
    """An alert raised by a rule or a detector; repeats update it (``count``, ``last_at``)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_dedup_status", "dedup_key", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8), index=True)  # low | medium | high | urgent
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | acknowledged
    message: Mapped[str] = mapped_column(String(500))
    dedup_key: Mapped[str] = mapped_column(String(200))
    value_ids: Mapped[str] = mapped_column(Text)  # JSON: the vital_values that raised it
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[str] = mapped_column(String(32))  # the first triggering value's time
    last_at: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
