"""indexes for the paged lists: a job's runs newest first, jobs by last update

``trackers (job_id, id)`` serves a job's run history (``WHERE job_id = ? ORDER BY id DESC
LIMIT n``) and the latest successful run per job (walked backwards from the newest id); it
replaces ``ix_trackers_job_id``, which it covers (MariaDB keeps it for the foreign key).
``jobs (updated_at, id)`` serves the Jobs screen's first page without sorting every job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:30:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Create before drop: MariaDB needs an index on trackers.job_id for its foreign key.
    op.create_index("ix_trackers_job_id_id", "trackers", ["job_id", "id"], unique=False)
    op.drop_index("ix_trackers_job_id", table_name="trackers")
    op.create_index("ix_jobs_updated_at_id", "jobs", ["updated_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_updated_at_id", table_name="jobs")
    op.create_index("ix_trackers_job_id", "trackers", ["job_id"], unique=False)
    op.drop_index("ix_trackers_job_id_id", table_name="trackers")
