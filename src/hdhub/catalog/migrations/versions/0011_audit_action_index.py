"""audit events by action (the warehouse page lists the latest loads)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 23:30:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_action_ts", "audit_events", ["action", "ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_events_action_ts", table_name="audit_events")
