"""delivery: recipient rules and conditions, message templates, owner alerts

``job_recipients.send_when``/``condition`` say when an address is mailed;
``trackers.content_hash``/``delivery_facts_json`` keep what the rules read, computed while
the result streamed; ``notifications.note`` says why one was skipped or what fell back;
``jobs`` gets its message templates and alert threshold; ``alerts`` holds owner alert
streaks; ``users.alerts_opt_in`` lets an admin get every job's alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("send_when", sa.String(length=10), nullable=False, server_default="always")
        )
        batch_op.add_column(sa.Column("condition", sa.String(length=500), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in ("subject_template", "body_template", "filename_template"):
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("body_rows", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("alert_after_failures", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("delivery_facts_json", sa.Text(), nullable=True))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("alerts_opt_in", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    utc = dancecat_core.models.meta.UTCDateTime
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("open_key", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tracker_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", utc(), nullable=False),
        sa.Column("closed_at", utc(), nullable=True),
        sa.Column("closed_by_tracker_id", sa.Integer(), nullable=True),
        sa.Column("opened_sent_at", utc(), nullable=True),
        sa.Column("closed_sent_at", utc(), nullable=True),
        sa.Column("claimed_at", utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_alerts_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["tracker_id"], ["trackers.id"], name=op.f("fk_alerts_tracker_id_trackers")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_tracker_id"],
            ["trackers.id"],
            name=op.f("fk_alerts_closed_by_tracker_id_trackers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alerts_open_key")),
    )
    op.create_index(op.f("ix_alerts_job_id"), "alerts", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_table("alerts")  # its index goes with it (MySQL refuses to drop it first: FK)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("alerts_opt_in")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.drop_column("delivery_facts_json")
        batch_op.drop_column("content_hash")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in (
            "alert_after_failures",
            "body_rows",
            "filename_template",
            "body_template",
            "subject_template",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.drop_column("condition")
        batch_op.drop_column("send_when")
