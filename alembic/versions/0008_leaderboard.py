"""assignments.leaderboard (opt-in) and leaderboard_names (pseudonyms chosen by students)

Revision ID: 0008_leaderboard
Revises: 0007_similarity
Create Date: 2026-12-01 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_leaderboard'
down_revision = '0007_similarity'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaderboard', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'leaderboard_names',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('assignment_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('assignment_id', 'user_id', name='uq_leaderboard_user'),
        sa.UniqueConstraint('assignment_id', 'name', name='uq_leaderboard_name'),
    )
    op.create_index('ix_leaderboard_names_assignment_id', 'leaderboard_names', ['assignment_id'])


def downgrade() -> None:
    op.drop_table('leaderboard_names')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('leaderboard')
