"""course-scoped roles: Enrollment.role decides access; courses may let TAs override scores

Revision ID: 0003_roles
Revises: 0002_accounts
Create Date: 2026-12-01 01:40:00

Before this revision a user whose `users.role` was "instructor" could act on every course. From now on access
comes from `enrollments.role` (instructor, ta, student) and `users.role` only tells a site admin from everyone
else (an "instructor" account may also create courses). Nothing is granted here: an instructor who relied on the
old global role must be enrolled in the courses they teach (`grader admin enroll`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_roles'
down_revision = '0002_accounts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ta_may_override', sa.Boolean(), nullable=False, server_default=sa.false()))
    # Anything else in these columns would be silently ignored by the policy; refuse it at the source.
    op.execute("UPDATE enrollments SET role = 'student' WHERE role NOT IN ('instructor', 'ta', 'student')")
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_check_constraint('ck_enrollments_role', "role IN ('instructor', 'ta', 'student')")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_check_constraint('ck_users_role', "role IN ('admin', 'instructor', 'student')")


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('ck_users_role', type_='check')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_constraint('ck_enrollments_role', type_='check')
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('ta_may_override')
