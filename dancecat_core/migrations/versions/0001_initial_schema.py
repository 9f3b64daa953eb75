"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:04:26.723605
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import dancecat_core.models.meta

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allowed_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allowed_emails")),
        sa.UniqueConstraint("email", name=op.f("uq_allowed_emails_email")),
    )
    op.create_table(
        "result_chunks",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql"), nullable=False),
        sa.PrimaryKeyConstraint("key", "seq", name=op.f("pk_result_chunks")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("last_login_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("driver", sa.String(length=50), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("database", sa.String(length=1024), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=True),
        sa.Column("password_encrypted", sa.Text(), nullable=True),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_connections_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_connections_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("annotation", sa.Text(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_jobs_connection_id_connections")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_jobs_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "job_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_recipients_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_recipients")),
        sa.UniqueConstraint("job_id", "email", name=op.f("uq_job_recipients_job_id")),
    )
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_recipients_job_id"), ["job_id"], unique=False)

    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("start_local", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("catch_up", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("last_run_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_schedules_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index("ix_schedules_due", ["active", "next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedules_job_id"), ["job_id"], unique=False)

    op.create_table(
        "trackers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("due_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("triggered_by_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("queued_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("started_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("finished_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_store", sa.String(length=50), nullable=True),
        sa.Column("result_key", sa.String(length=255), nullable=True),
        sa.Column("result_bytes", sa.BigInteger(), nullable=True),
        sa.Column("result_meta_json", sa.Text(), nullable=True),
        sa.Column("result_expires_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_trackers_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], name=op.f("fk_trackers_schedule_id_schedules")
        ),
        sa.ForeignKeyConstraint(
            ["triggered_by_id"], ["users.id"], name=op.f("fk_trackers_triggered_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trackers")),
        sa.UniqueConstraint("schedule_id", "due_at", name=op.f("uq_trackers_schedule_id")),
    )
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trackers_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trackers_status"), ["status"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracker_id", sa.Integer(), nullable=False),
        sa.Column("notifier", sa.String(length=50), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("sent_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tracker_id"], ["trackers.id"], name=op.f("fk_notifications_tracker_id_trackers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "tracker_id", "notifier", "recipient", name=op.f("uq_notifications_tracker_id")
        ),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifications_tracker_id"), ["tracker_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_tracker_id"))

    op.drop_table("notifications")
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trackers_status"))
        batch_op.drop_index(batch_op.f("ix_trackers_job_id"))

    op.drop_table("trackers")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedules_job_id"))
        batch_op.drop_index("ix_schedules_due")

    op.drop_table("schedules")
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_recipients_job_id"))

    op.drop_table("job_recipients")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_owner_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_connection_id"))

    op.drop_table("jobs")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connections_owner_id"))

    op.drop_table("connections")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("result_chunks")
    op.drop_table("allowed_emails")
