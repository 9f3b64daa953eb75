"""parameters: a job's declared parameters, a schedule's fixed values, a run's values

Each is JSON text (``dancecat_core.parameters``): ``jobs.parameters_json`` is the list of
``{name, type, default}``, ``schedules.parameter_values_json`` the values a schedule fixes,
``trackers.parameter_values_json`` the values a run was given and, once it ran, every
value it used. NULL means none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("jobs", "parameters_json"),
    ("schedules", "parameter_values_json"),
    ("trackers", "parameter_values_json"),
)


def upgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=True))


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)
