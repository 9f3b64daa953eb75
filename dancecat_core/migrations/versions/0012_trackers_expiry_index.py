"""index for a job's newest valid result: ``trackers (job_id, result_expires_at)``

"Latest result" (the Jobs screen, a job's page, the latest-result downloads) takes each
job's newest Success whose result has not expired (``trackers.newest_result_ids``). With
only ``(job_id, id)`` the database read every run of a job whose results had all
expired to learn that none was valid: 25 jobs of 100 runs cost ~2.4 ms of PostgreSQL time
on every Jobs screen. With ``(job_id, result_expires_at)`` it reads only the runs whose
expiry is still ahead (or none).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:10:00
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_trackers_job_id_result_expires_at",
        "trackers",
        ["job_id", "result_expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_trackers_job_id_result_expires_at", table_name="trackers")
