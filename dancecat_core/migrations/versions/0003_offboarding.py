"""accounts: disabling, server-side sign-out, sign-in throttling per email

``users.disabled_at`` marks a disabled account; ``users.session_generation`` is copied
into session cookies and raised to end them all. Failed sign-ins move from ``users`` to
``sign_in_throttles``, which counts every email tried (registered or not) so that the
lockout tells nobody which accounts exist. Every allowed email gets its ``users`` row
(without a password) so the users screen lists invited people too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 16:00:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("locked_until", dancecat_core.models.meta.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_throttles")),
        sa.UniqueConstraint("email", name=op.f("uq_sign_in_throttles_email")),
    )
    op.create_index(
        op.f("ix_sign_in_throttles_last_failure_at"),
        "sign_in_throttles",
        ["last_failure_at"],
        unique=False,
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("disabled_at", dancecat_core.models.meta.UTCDateTime(), nullable=True)
        )
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("locked_until")
    op.execute(
        "INSERT INTO users (email, is_admin, created_at, session_generation) "
        "SELECT a.email, a.is_admin, a.created_at, 0 FROM allowed_emails a "
        "WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.email = a.email)"
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("locked_until", dancecat_core.models.meta.UTCDateTime(), nullable=True)
        )
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("session_generation")
    op.drop_index(op.f("ix_sign_in_throttles_last_failure_at"), table_name="sign_in_throttles")
    op.drop_table("sign_in_throttles")
