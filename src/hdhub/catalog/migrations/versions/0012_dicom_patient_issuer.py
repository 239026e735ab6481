"""imaging index: a patient is (PatientID, IssuerOfPatientID), each site issuing its own numbers

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Studies stored before keep NULL: issuer unknown (found by their Patient ID as before).
    with op.batch_alter_table("dicom_studies") as batch:
        batch.add_column(sa.Column("issuer_of_patient_id", sa.String(length=64), nullable=True))
    # The patient index now carries the issuer (a Patient ID alone still uses it).
    op.drop_index("ix_dicom_studies_patient_id", table_name="dicom_studies")
    op.create_index(
        "ix_dicom_studies_patient_id_issuer", "dicom_studies", ["patient_id", "issuer_of_patient_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_dicom_studies_patient_id_issuer", table_name="dicom_studies")
    op.create_index("ix_dicom_studies_patient_id", "dicom_studies", ["patient_id"])
    with op.batch_alter_table("dicom_studies") as batch:
        batch.drop_column("issuer_of_patient_id")
