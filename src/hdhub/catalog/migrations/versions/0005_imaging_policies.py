"""imaging archive: IOCM rejection and the retention of each instance

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("dicom_studies") as batch:
        batch.add_column(sa.Column("rejected_at", WHEN, nullable=True))
    with op.batch_alter_table("dicom_series") as batch:
        batch.add_column(sa.Column("rejected_at", WHEN, nullable=True))
    with op.batch_alter_table("dicom_instances") as batch:
        batch.add_column(sa.Column("retain_until", WHEN, nullable=True))
        batch.add_column(sa.Column("rejected_at", WHEN, nullable=True))
        batch.add_column(sa.Column("rejection", sa.String(length=100), nullable=True))
    # The UID indexes carry rejected_at: counting a page's visible instances reads them alone.
    op.drop_index("ix_dicom_instances_study_uid", table_name="dicom_instances")
    op.drop_index("ix_dicom_instances_series_uid", table_name="dicom_instances")
    op.drop_index("ix_dicom_series_study_uid_modality", table_name="dicom_series")
    op.create_index("ix_dicom_instances_study_uid_rejected", "dicom_instances", ["study_uid", "rejected_at"])
    op.create_index(
        "ix_dicom_instances_series_uid_rejected", "dicom_instances", ["series_uid", "rejected_at"]
    )
    op.create_index(
        "ix_dicom_series_study_modality_rejected", "dicom_series", ["study_uid", "modality", "rejected_at"]
    )
    # Partial: only rejected rows (a full index would be chosen for "rejected_at IS NULL").
    op.create_index(
        "ix_dicom_instances_rejected",
        "dicom_instances",
        ["rejected_at"],
        sqlite_where=sa.text("rejected_at IS NOT NULL"),
        postgresql_where=sa.text("rejected_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_dicom_instances_rejected", table_name="dicom_instances")
    op.drop_index("ix_dicom_series_study_modality_rejected", table_name="dicom_series")
    op.drop_index("ix_dicom_instances_series_uid_rejected", table_name="dicom_instances")
    op.drop_index("ix_dicom_instances_study_uid_rejected", table_name="dicom_instances")
    op.create_index("ix_dicom_series_study_uid_modality", "dicom_series", ["study_uid", "modality"])
    op.create_index("ix_dicom_instances_series_uid", "dicom_instances", ["series_uid"])
    op.create_index("ix_dicom_instances_study_uid", "dicom_instances", ["study_uid"])
    with op.batch_alter_table("dicom_instances") as batch:
        for column in ("rejection", "rejected_at", "retain_until"):
            batch.drop_column(column)
    for table in ("dicom_series", "dicom_studies"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("rejected_at")
