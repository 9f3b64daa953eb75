"""pull URLs, trigger URLs and chains

``pull_urls`` and ``triggers`` hold a URL token's SHA-256 only; ``pull_uses`` logs every
pull. ``jobs.after_job_id`` / ``after_on`` chain a job after another. On ``trackers``,
``UNIQUE(upstream_tracker_id, job_id)`` is the exactly-once claim of a chained run and
``UNIQUE(trigger_id, idempotency_key)`` makes repeated trigger deliveries one run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC = dancecat_core.models.meta.UTCDateTime


def _url_table(name: str, *extra: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        *extra,
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("last_used_at", UTC(), nullable=True),
        sa.Column("revoked_at", UTC(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f(f"fk_{name}_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("token_hash", name=op.f(f"uq_{name}_token_hash")),
    )
    op.create_index(op.f(f"ix_{name}_job_id"), name, ["job_id"], unique=False)


def upgrade() -> None:
    _url_table(
        "pull_urls",
        sa.Column("window_started_at", UTC(), nullable=True),
        sa.Column("window_pulls", sa.Integer(), nullable=False, server_default="0"),
    )
    _url_table("triggers", sa.Column("secret_encrypted", sa.Text(), nullable=True))
    op.create_table(
        "pull_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pull_url_id", sa.Integer(), nullable=False),
        sa.Column("used_at", UTC(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("tracker_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pull_url_id"], ["pull_urls.id"], name=op.f("fk_pull_uses_pull_url_id_pull_urls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_uses")),
    )
    op.create_index(op.f("ix_pull_uses_pull_url_id"), "pull_uses", ["pull_url_id"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_job_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("after_on", sa.String(length=8), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_after_job_id_jobs"), "jobs", ["after_job_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_jobs_after_job_id"), ["after_job_id"], unique=False)
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_tracker_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("trigger_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_trackers_upstream_tracker_id_trackers"),
            "trackers",
            ["upstream_tracker_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_trackers_trigger_id_triggers"), "triggers", ["trigger_id"], ["id"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_trackers_upstream_tracker_id"), ["upstream_tracker_id", "job_id"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_trackers_trigger_id"), ["trigger_id", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("trackers", schema=None) as batch_op:
        # Foreign keys first: MariaDB keeps the unique indexes for them.
        batch_op.drop_constraint(batch_op.f("fk_trackers_trigger_id_triggers"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_trackers_upstream_tracker_id_trackers"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_trackers_trigger_id"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_trackers_upstream_tracker_id"), type_="unique")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("trigger_id")
        batch_op.drop_column("upstream_tracker_id")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_after_job_id_jobs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_after_job_id"))
        batch_op.drop_column("after_on")
        batch_op.drop_column("after_job_id")
    op.drop_table("pull_uses")
    op.drop_table("triggers")
    op.drop_table("pull_urls")
