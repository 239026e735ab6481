"""non-DICOM objects: the patient is (Patient ID, IssuerOfPatientID), as for DICOM studies

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Objects uploaded before keep NULL: their issuer is their linked study's, or unknown.
    with op.batch_alter_table("media_objects") as batch:
        batch.add_column(sa.Column("issuer_of_patient_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_objects") as batch:
        batch.drop_column("issuer_of_patient_id")
