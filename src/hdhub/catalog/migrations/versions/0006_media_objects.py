"""imaging archive: non-DICOM objects (videos, slides, documents) and their uploads

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "media_objects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=True),
        sa.Column("encounter_id", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("stay_date", sa.String(length=8), nullable=True),
        sa.Column("size", BIG, nullable=False),
        sa.Column("received", BIG, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("object_key", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("sha1", sa.String(length=40), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_objects")),
    )
    op.create_index(op.f("ix_media_objects_patient_id"), "media_objects", ["patient_id"])
    op.create_index(op.f("ix_media_objects_study_uid"), "media_objects", ["study_uid"])


def downgrade() -> None:
    op.drop_index(op.f("ix_media_objects_study_uid"), table_name="media_objects")
    op.drop_index(op.f("ix_media_objects_patient_id"), table_name="media_objects")
    op.drop_table("media_objects")
