"""accounts: token expiry, session versions, login throttle entries, live stream slots

Revision ID: 0002_accounts
Revises: 0001
Create Date: 2026-12-01 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_accounts'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('throttle_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('throttle_entries', schema=None) as batch_op:
        batch_op.create_index('ix_throttle_entries_key_at', ['key', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_throttle_entries_expires_at'), ['expires_at'], unique=False)
    op.create_table('stream_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'slot')
    )


def downgrade() -> None:
    op.drop_table('stream_slots')
    with op.batch_alter_table('throttle_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_throttle_entries_expires_at'))
        batch_op.drop_index('ix_throttle_entries_key_at')
    op.drop_table('throttle_entries')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
