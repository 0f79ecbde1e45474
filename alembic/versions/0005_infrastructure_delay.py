"""grading_runs.delayed_since, infra_faults: a run waiting out an infrastructure fault is delayed, never graded

Revision ID: 0005_infra_delay
Revises: 0004_self_test
Create Date: 2026-12-01 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_infra_delay'
down_revision = '0004_self_test'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('grading_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delayed_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('infra_faults', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('grading_runs', schema=None) as batch_op:
        batch_op.drop_column('infra_faults')
        batch_op.drop_column('delayed_since')
