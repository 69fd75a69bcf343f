"""Definitions, submission inputs, state-machine outputs and the values in their paths as `json` (their text) instead of
`jsonb`: jsonb reorders an object's keys (shorter keys first), and a state machine must see
its definition and input in the order they were written, as Step Functions does (a Pass
state's Result, or States.JsonToString of the input, shows the order). Nothing queries into
these columns; they are read whole.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = (
    ("workflow_definitions", "definition"),
    ("submissions", "input"),
    ("jobs", "output"),
    ("job_state_events", "input"),
    ("job_state_events", "output"),
)


def upgrade() -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE json USING {column}::json")


def downgrade() -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb")
