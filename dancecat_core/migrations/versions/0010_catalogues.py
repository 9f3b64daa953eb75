"""schema: each connection's catalogue, cached for the job form's schema browser

``catalogues`` holds a connection's tables and views (one compressed JSON list) and when
they were read; ``catalogue_tables`` keeps a table's columns once they were asked for.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 03:40:00
"""

import sqlalchemy as sa
from alembic import op

import dancecat_core.models.meta

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalogues",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("read_at", dancecat_core.models.meta.UTCDateTime(), nullable=False),
        sa.Column("read_ms", sa.Integer(), nullable=False),
        sa.Column("left_out", sa.Integer(), nullable=False),
        sa.Column("tables", dancecat_core.models.meta.LongBlob(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_catalogues_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_catalogues")),
    )
    op.create_table(
        "catalogue_tables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("schema_name", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("columns_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_catalogue_tables_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_tables")),
    )
    op.create_index(
        "ix_catalogue_tables_lookup",
        "catalogue_tables",
        ["connection_id", "schema_name", "name"],
        unique=False,
    )


def downgrade() -> None:
    # The index goes with its table (MariaDB refuses to drop the one its foreign key uses).
    op.drop_table("catalogue_tables")
    op.drop_table("catalogues")
