"""monitoring: devices, monitored patients, vital values, rejections, alerts

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 20:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitoring_devices",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_devices")),
        sa.UniqueConstraint("device_id", name=op.f("uq_monitoring_devices_device_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_monitoring_devices_token_hash")),
    )
    op.create_index(op.f("ix_monitoring_devices_person_key"), "monitoring_devices", ["person_key"])
    op.create_table(
        "monitored_patients",
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("heart_failure", sa.Boolean(), nullable=False),
        sa.Column("thresholds", sa.Text(), nullable=False),
        sa.Column("enrolled_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("person_key", name=op.f("pk_monitored_patients")),
    )
    op.create_table(
        "vital_values",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("effective_at", sa.String(length=32), nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("flushed_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vital_values")),
        sa.UniqueConstraint("device_id", "code", "effective_at", name=op.f("uq_vital_values_device_id")),
    )
    op.create_index(
        "ix_vital_values_person_code_time", "vital_values", ["person_key", "code", "effective_at"]
    )
    op.create_index(op.f("ix_vital_values_flushed_at"), "vital_values", ["flushed_at"])
    op.create_table(
        "vital_rejections",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vital_rejections")),
    )
    op.create_index(op.f("ix_vital_rejections_at"), "vital_rejections", ["at"])
    op.create_index(op.f("ix_vital_rejections_reason"), "vital_rejections", ["reason"])
    op.create_table(
        "alerts",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("value_ids", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.String(length=32), nullable=False),
        sa.Column("last_at", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_dedup_status", "alerts", ["dedup_key", "status"])
    op.create_index(op.f("ix_alerts_person_key"), "alerts", ["person_key"])
    op.create_index(op.f("ix_alerts_severity"), "alerts", ["severity"])
    op.create_index(op.f("ix_alerts_status"), "alerts", ["status"])
    op.create_index(op.f("ix_alerts_updated_at"), "alerts", ["updated_at"])


def downgrade() -> None:
    for table in ("alerts", "vital_rejections", "vital_values", "monitored_patients", "monitoring_devices"):
        op.drop_table(table)
