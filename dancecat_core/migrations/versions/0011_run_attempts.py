"""dead workers: the process running a tracker, its attempts and a note

``trackers.worker_process`` records the process running a tracker (boot id, pid
namespace, pid, start time, host), so a worker on the same machine knows at once that
the run's process is gone. ``trackers.attempts`` counts starts; a read-only run whose
worker died is run again (``RUN_RETRIES``) and ``trackers.note`` says why.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 03:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker_process", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("attempts")
        batch_op.drop_column("worker_process")
