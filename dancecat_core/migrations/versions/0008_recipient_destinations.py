"""app locks and job_recipients.destination

``app_locks`` holds one row per named lock; a transaction that must not run beside
another of its kind updates the lock's row first (a row lock on PostgreSQL and MariaDB,
SQLite's write lock), so the second waits for the first to commit. Its one lock so far,
``job_chains``, makes saving a job's "run after" serial: two saves that would close a
cycle between them (A after B, B after A) cannot both pass the cycle check.

``job_recipients.email`` is renamed ``destination``: it holds URLs as well as addresses
since 0007.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 03:40:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The locks there are (``dancecat_core.app_locks``); each needs its row.
LOCKS = ("job_chains",)


def upgrade() -> None:
    locks = op.create_table(
        "app_locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("taken_at", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_locks")),
    )
    op.bulk_insert(locks, [{"name": name, "taken_at": None} for name in LOCKS])
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.alter_column(
            "email", new_column_name="destination", existing_type=sa.String(length=600),
            existing_nullable=False,
        )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.alter_column(
            "destination", new_column_name="email", existing_type=sa.String(length=600),
            existing_nullable=False,
        )  # fmt: skip
    op.drop_table("app_locks")
