"""destinations: recipients written as URLs, their secrets encrypted, delivery keys

``job_recipients.email`` and ``notifications.recipient`` hold a destination (an email
address or a URL with its secrets masked), so they grow to 600 characters (still inside
MariaDB's 3072-byte index limit for their unique keys). ``job_recipients.secrets_encrypted``
keeps a destination's secrets (the full URL, a webhook's signing secret) Fernet-encrypted.
``notifications.delivery_key`` is sent with every try of one delivery so that the receiver
can drop a duplicate; ``notifications.claimed_at`` marks a try in progress, so that a try
whose worker died is found and sent again (``DELIVERY_LEASE_SECONDS``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:40:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.alter_column(
            "email", existing_type=sa.String(length=254), type_=sa.String(length=600),
            existing_nullable=False,
        )  # fmt: skip
        batch_op.add_column(sa.Column("secrets_encrypted", sa.Text(), nullable=True))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column(
            "recipient", existing_type=sa.String(length=254), type_=sa.String(length=600),
            existing_nullable=False,
        )  # fmt: skip
        batch_op.add_column(sa.Column("delivery_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("claimed_at", dancecat_core.models.meta.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("delivery_key")
        batch_op.alter_column(
            "recipient", existing_type=sa.String(length=600), type_=sa.String(length=254),
            existing_nullable=False,
        )  # fmt: skip
    with op.batch_alter_table("job_recipients", schema=None) as batch_op:
        batch_op.drop_column("secrets_encrypted")
        batch_op.alter_column(
            "email", existing_type=sa.String(length=600), type_=sa.String(length=254),
            existing_nullable=False,
        )  # fmt: skip
