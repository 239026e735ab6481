"""imaging index: patient names searchable by prefix, studies listed newest first and
ModalitiesInStudy matched from indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 14:30:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_dicom_series_study_uid", table_name="dicom_series")
    op.create_index("ix_dicom_series_study_uid_modality", "dicom_series", ["study_uid", "modality"])
    op.drop_index("ix_dicom_studies_study_date", table_name="dicom_studies")
    op.create_index("ix_dicom_studies_study_date_uid", "dicom_studies", ["study_date", "study_uid"])
    op.create_index(
        "ix_dicom_studies_patient_name",
        "dicom_studies",
        ["patient_name"],
        postgresql_ops={"patient_name": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_dicom_series_study_uid_modality", table_name="dicom_series")
    op.create_index("ix_dicom_series_study_uid", "dicom_series", ["study_uid"])
    op.drop_index("ix_dicom_studies_study_date_uid", table_name="dicom_studies")
    op.create_index("ix_dicom_studies_study_date", "dicom_studies", ["study_date"])
    op.drop_index("ix_dicom_studies_patient_name", table_name="dicom_studies")
