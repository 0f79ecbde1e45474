"""similarity_reports: pairwise similarity of an assignment's latest submissions, computed in the background

Revision ID: 0007_similarity
Revises: 0006_extensions
Create Date: 2026-12-01 02:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_similarity'
down_revision = '0006_extensions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'similarity_reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('assignment_id', sa.Integer(), nullable=False),
        sa.Column('requested_by', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('starter', sa.LargeBinary(), nullable=False),
        sa.Column('done_pairs', sa.Integer(), nullable=False),
        sa.Column('total_pairs', sa.Integer(), nullable=False),
        sa.Column('pairs', sa.JSON(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['requested_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_similarity_reports_assignment_id', 'similarity_reports', ['assignment_id'])


def downgrade() -> None:
    op.drop_table('similarity_reports')
