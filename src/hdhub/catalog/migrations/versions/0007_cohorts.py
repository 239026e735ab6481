"""cohorts: saved definitions, the count log behind the rate limit, the opposition registry

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cohort_definitions",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_definitions")),
        sa.UniqueConstraint("owner", "name", "version", name=op.f("uq_cohort_definitions_owner")),
    )
    op.create_index(op.f("ix_cohort_definitions_owner"), "cohort_definitions", ["owner"])
    op.create_table(
        "cohort_count_log",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_count_log")),
    )
    op.create_index("ix_cohort_count_log_actor_fp_at", "cohort_count_log", ["actor", "fingerprint", "at"])
    op.create_table(
        "research_oppositions",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_research_oppositions")),
    )
    op.create_index(op.f("ix_research_oppositions_person_key"), "research_oppositions", ["person_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_research_oppositions_person_key"), table_name="research_oppositions")
    op.drop_table("research_oppositions")
    op.drop_index("ix_cohort_count_log_actor_fp_at", table_name="cohort_count_log")
    op.drop_table("cohort_count_log")
    op.drop_index(op.f("ix_cohort_definitions_owner"), table_name="cohort_definitions")
    op.drop_table("cohort_definitions")
