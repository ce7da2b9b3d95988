"""transcript segments keep the wire fields no column holds

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('transcript_segments', sa.Column('raw', sa.JSON(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would lose the
    # search triggers migration 0005 put on it.
    op.drop_column('transcript_segments', 'raw')
