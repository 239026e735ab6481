"""provisioning runs: a workspace provisioning's status in the catalog, not in one process

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provisioning_runs",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("project_id", BIG, nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("heartbeat_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("extract_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_provisioning_runs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_runs")),
    )
    op.create_index(op.f("ix_provisioning_runs_project_id"), "provisioning_runs", ["project_id"])
    # At most one running provisioning per project: a second start fails its INSERT.
    op.create_index(
        "uq_provisioning_runs_running",
        "provisioning_runs",
        ["project_id"],
        unique=True,
        sqlite_where=sa.text("state = 'running'"),
        postgresql_where=sa.text("state = 'running'"),
    )


def downgrade() -> None:
    op.drop_table("provisioning_runs")
