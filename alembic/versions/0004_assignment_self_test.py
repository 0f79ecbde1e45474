"""assignments.self_test: the last self-test of the instructor's reference solution

Revision ID: 0004_self_test
Revises: 0003_roles
Create Date: 2026-12-01 01:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_self_test'
down_revision = '0003_roles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('self_test', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('self_test')
