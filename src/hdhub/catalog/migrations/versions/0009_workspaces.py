"""workspaces: project tokens, workspace keys, extracts, the output airlock

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("workspace_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("extract_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("frozen_at", WHEN, nullable=True))
        batch.add_column(sa.Column("purged_at", WHEN, nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("project_id", BIG, nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_tokens_project_id_projects"), "projects", ["project_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index(op.f("ix_api_tokens_project_id"), ["project_id"])
    op.create_table(
        "project_extracts",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("project_id", BIG, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=300), nullable=False),
        sa.Column("persons", BIG, nullable=False),
        sa.Column("excluded_by_opposition", BIG, nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("deleted_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_extracts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_extracts")),
        sa.UniqueConstraint("project_id", "version", name=op.f("uq_project_extracts_project_id")),
    )
    op.create_index(op.f("ix_project_extracts_project_id"), "project_extracts", ["project_id"])
    op.create_table(
        "release_requests",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("project_id", BIG, nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("object_key", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", BIG, nullable=False),
        sa.Column("checks", sa.Text(), nullable=False),
        sa.Column("check_status", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_release_requests_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_requests")),
    )
    op.create_index(op.f("ix_release_requests_project_id"), "release_requests", ["project_id"])
    op.create_index(op.f("ix_release_requests_status"), "release_requests", ["status"])
    op.create_table(
        "release_reviews",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("release_id", BIG, nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("vote", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["release_requests.id"],
            name=op.f("fk_release_reviews_release_id_release_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_reviews")),
        sa.UniqueConstraint("release_id", "reviewer", name=op.f("uq_release_reviews_release_id")),
    )
    op.create_index(op.f("ix_release_reviews_release_id"), "release_reviews", ["release_id"])


def downgrade() -> None:
    op.drop_table("release_reviews")
    op.drop_table("release_requests")
    op.drop_table("project_extracts")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index(op.f("ix_api_tokens_project_id"))
        batch.drop_constraint(op.f("fk_api_tokens_project_id_projects"), type_="foreignkey")
        batch.drop_column("project_id")
    with op.batch_alter_table("projects") as batch:
        for column in ("purged_at", "frozen_at", "extract_version", "workspace_key"):
            batch.drop_column(column)
