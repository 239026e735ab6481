"""governance: research projects, their members and the committee's reviews

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 18:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=48), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.String(length=100), nullable=False),
        sa.Column("pi", sa.String(length=150), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("cohort_owner", sa.String(length=200), nullable=True),
        sa.Column("cohort_name", sa.String(length=200), nullable=True),
        sa.Column("cohort_version", sa.Integer(), nullable=True),
        sa.Column("data_request", sa.Text(), nullable=False),
        sa.Column("date_from", sa.String(length=10), nullable=True),
        sa.Column("date_to", sa.String(length=10), nullable=True),
        sa.Column("duration_months", sa.Integer(), nullable=False),
        sa.Column("perimeter", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("slug", name=op.f("uq_projects_slug")),
    )
    op.create_index(op.f("ix_projects_status"), "projects", ["status"])
    op.create_table(
        "project_members",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("project_id", BIG, nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_members_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_members")),
        sa.UniqueConstraint("project_id", "username", name=op.f("uq_project_members_project_id")),
    )
    op.create_index(op.f("ix_project_members_project_id"), "project_members", ["project_id"])
    op.create_table(
        "project_reviews",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("project_id", BIG, nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("vote", sa.String(length=16), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_reviews_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_reviews")),
    )
    op.create_index(op.f("ix_project_reviews_project_id"), "project_reviews", ["project_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_project_reviews_project_id"), table_name="project_reviews")
    op.drop_table("project_reviews")
    op.drop_index(op.f("ix_project_members_project_id"), table_name="project_members")
    op.drop_table("project_members")
    op.drop_index(op.f("ix_projects_status"), table_name="projects")
    op.drop_table("projects")
