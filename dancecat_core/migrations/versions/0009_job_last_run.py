"""jobs.last_run_at: when a job's newest run was queued, apart from when it was edited

Every run used to bump ``jobs.updated_at``, so "Updated on" showed the last run and a list
ordered by it reshuffled while runs fired. Runs now set ``last_run_at`` instead; it starts
as each job's newest run's queue time.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 04:00:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_run_at", dancecat_core.models.meta.UTCDateTime(), nullable=True)
        )
    op.execute(
        "UPDATE jobs SET last_run_at ="
        " (SELECT MAX(trackers.queued_at) FROM trackers WHERE trackers.job_id = jobs.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("last_run_at")
