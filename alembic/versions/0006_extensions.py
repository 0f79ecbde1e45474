"""extensions, late_day_grants: per-student due dates and late-day tokens

Revision ID: 0006_extensions
Revises: 0005_infra_delay
Create Date: 2026-12-01 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_extensions'
down_revision = '0005_infra_delay'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'extensions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('assignment_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('granted_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['granted_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('assignment_id', 'user_id', name='uq_extension_assignment_user'),
    )
    op.create_index('ix_extensions_assignment_id', 'extensions', ['assignment_id'])
    op.create_index('ix_extensions_user_id', 'extensions', ['user_id'])
    op.create_table(
        'late_day_grants',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('course_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('tokens', sa.Integer(), nullable=False),
        sa.Column('granted_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['course_id'], ['courses.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['granted_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('course_id', 'user_id', name='uq_late_days_course_user'),
    )
    op.create_index('ix_late_day_grants_course_id', 'late_day_grants', ['course_id'])
    op.create_index('ix_late_day_grants_user_id', 'late_day_grants', ['user_id'])


def downgrade() -> None:
    op.drop_table('late_day_grants')
    op.drop_table('extensions')
