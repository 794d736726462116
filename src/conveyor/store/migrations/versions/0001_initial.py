"""Initial schema: jobs, dead letters, batches and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 21:55:34.331850
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("scopes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"], unique=False)

    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batches_tenant_created", "batches", ["tenant", "created_at"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error_type", sa.String(length=255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("failed_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("replayed_as", sa.String(length=64), nullable=True),
        sa.Column("replayed_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_dead_letters_expires", "dead_letters", ["expires_at"], unique=False)
    op.create_index("ix_dead_letters_failed", "dead_letters", ["failed_at", "job_id"], unique=False)
    op.create_index(
        "ix_dead_letters_queue_failed", "dead_letters", ["queue", "failed_at"], unique=False
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=True),
        sa.Column("stage", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error_type", sa.String(length=255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=True),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("replay_of", sa.String(length=64), nullable=True),
        sa.Column("tags", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("state_sid", sa.BigInteger(), nullable=False),
        sa.Column("start_sid", sa.BigInteger(), nullable=True),
        sa.Column("progress_sid", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        postgresql_with={"fillfactor": 70},
    )
    op.create_index(
        "ix_jobs_batch",
        "jobs",
        ["batch_id"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
        sqlite_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"], unique=False)
    op.create_index("ix_jobs_queue_created", "jobs", ["queue", "created_at", "id"], unique=False)
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at", "id"], unique=False)
    op.create_index(
        "ix_jobs_tenant_created",
        "jobs",
        ["tenant", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("tenant IS NOT NULL"),
        sqlite_where=sa.text("tenant IS NOT NULL"),
    )
    op.create_index("ix_jobs_type_created", "jobs", ["type", "created_at", "id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_jobs_type_created", table_name="jobs")
    op.drop_index("ix_jobs_tenant_created", table_name="jobs")
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_index("ix_jobs_queue_created", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_batch", table_name="jobs")

    op.drop_table("jobs")
    op.drop_index("ix_dead_letters_queue_failed", table_name="dead_letters")
    op.drop_index("ix_dead_letters_failed", table_name="dead_letters")
    op.drop_index("ix_dead_letters_expires", table_name="dead_letters")

    op.drop_table("dead_letters")
    op.drop_index("ix_batches_tenant_created", table_name="batches")

    op.drop_table("batches")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")

    op.drop_table("api_keys")
