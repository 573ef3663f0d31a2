"""The first archive schema (services/archive/tables.py as it was written).

Revision ID: 0001
Revises: 
Create Date: 2026-12-07 06:39:46.712375
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.archive.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_episodes',
    sa.Column('fingerprint', sa.String(length=200), nullable=False),
    sa.Column('starts_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('alertname', sa.String(length=200), nullable=False),
    sa.Column('ceasefire_id', sa.String(length=200), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ends_at', services.archive.tables.UtcTime(timezone=True), nullable=True),
    sa.Column('updated_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('annotations', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint', 'starts_at')
    )
    with op.batch_alter_table('alert_episodes', schema=None) as batch_op:
        batch_op.create_index('alert_episodes_ceasefire_start', ['ceasefire_id', 'starts_at'], unique=False)

    op.create_table('alerts',
    sa.Column('fingerprint', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('alertname', sa.String(length=200), nullable=False),
    sa.Column('ceasefire_id', sa.String(length=200), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('starts_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('ends_at', services.archive.tables.UtcTime(timezone=True), nullable=True),
    sa.Column('updated_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('annotations', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint')
    )
    op.create_table('archive_meta',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('dead_letters',
    sa.Column('origin_partition', sa.Integer(), nullable=False),
    sa.Column('origin_offset', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('problems', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('report_id', sa.String(length=200), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=True),
    sa.Column('key', sa.LargeBinary(), nullable=True),
    sa.Column('value', sa.LargeBinary(), nullable=True),
    sa.Column('at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('origin_partition', 'origin_offset')
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('dead_letters_at', ['at'], unique=False)
        batch_op.create_index('dead_letters_report', ['source', 'report_id'], unique=False)

    op.create_table('duplicates',
    sa.Column('origin_partition', sa.Integer(), nullable=False),
    sa.Column('origin_offset', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('report_id', sa.String(length=200), nullable=False),
    sa.Column('rule', sa.String(length=16), nullable=False),
    sa.Column('duplicate_of', sa.String(length=200), nullable=False),
    sa.Column('at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('origin_partition', 'origin_offset')
    )
    with op.batch_alter_table('duplicates', schema=None) as batch_op:
        batch_op.create_index('duplicates_report', ['source', 'report_id'], unique=False)

    op.create_table('faults',
    sa.Column('topic_role', sa.String(length=32), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=True),
    sa.Column('at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('topic_role', 'partition', 'offset')
    )
    op.create_table('fragility',
    sa.Column('ceasefire_id', sa.String(length=200), nullable=False),
    sa.Column('as_of', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('fragility_index', sa.Float(), nullable=False),
    sa.Column('components', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('inputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('weights', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('ceasefire_id', 'as_of', 'kind')
    )
    op.create_table('incident_members',
    sa.Column('incident_id', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('report_id', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('sector', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('incident_id', 'source', 'report_id')
    )
    with op.batch_alter_table('incident_members', schema=None) as batch_op:
        batch_op.create_index('incident_members_report', ['source', 'report_id'], unique=False)
        batch_op.create_index('incident_members_sector', ['sector'], unique=False)

    op.create_table('incident_versions',
    sa.Column('incident_id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ordered_at', services.archive.tables.UtcTime(timezone=True), nullable=True),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('incident_id', 'version')
    )
    op.create_table('incidents',
    sa.Column('incident_id', sa.String(length=200), nullable=False),
    sa.Column('ceasefire_id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('merged_into', sa.String(length=200), nullable=True),
    sa.Column('first_observed_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('last_observed_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('radius_km', sa.Float(), nullable=True),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('report_count', sa.Integer(), nullable=False),
    sa.Column('killed_low', sa.Integer(), nullable=True),
    sa.Column('killed_high', sa.Integer(), nullable=True),
    sa.Column('injured_low', sa.Integer(), nullable=True),
    sa.Column('injured_high', sa.Integer(), nullable=True),
    sa.Column('reciprocal', sa.Boolean(), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('ordered_at', services.archive.tables.UtcTime(timezone=True), nullable=True),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('incident_id')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('incidents_ceasefire_last', ['ceasefire_id', 'last_observed_at'], unique=False)

    op.create_table('report_revisions',
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('report_id', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ingested_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'report_id', 'revision')
    )
    op.create_table('reports',
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('report_id', sa.String(length=200), nullable=False),
    sa.Column('ceasefire_id', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('retraction_reason', sa.Text(), nullable=True),
    sa.Column('source_party', sa.String(length=200), nullable=False),
    sa.Column('accused_party', sa.String(length=200), nullable=True),
    sa.Column('observed_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('reported_at', services.archive.tables.UtcTime(timezone=True), nullable=True),
    sa.Column('ingested_at', services.archive.tables.UtcTime(timezone=True), nullable=False),
    sa.Column('violation_type', sa.String(length=200), nullable=False),
    sa.Column('sector', sa.String(length=200), nullable=True),
    sa.Column('place', sa.String(length=200), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('precision_km', sa.Float(), nullable=True),
    sa.Column('killed', sa.Integer(), nullable=True),
    sa.Column('injured', sa.Integer(), nullable=True),
    sa.Column('civilian', sa.Boolean(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'report_id')
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('reports_ceasefire_observed', ['ceasefire_id', 'observed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('reports_ceasefire_observed')

    op.drop_table('reports')
    op.drop_table('report_revisions')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('incidents_ceasefire_last')

    op.drop_table('incidents')
    op.drop_table('incident_versions')
    with op.batch_alter_table('incident_members', schema=None) as batch_op:
        batch_op.drop_index('incident_members_sector')
        batch_op.drop_index('incident_members_report')

    op.drop_table('incident_members')
    op.drop_table('fragility')
    op.drop_table('faults')
    with op.batch_alter_table('duplicates', schema=None) as batch_op:
        batch_op.drop_index('duplicates_report')

    op.drop_table('duplicates')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('dead_letters_report')
        batch_op.drop_index('dead_letters_at')

    op.drop_table('dead_letters')
    op.drop_table('archive_meta')
    op.drop_table('alerts')
    with op.batch_alter_table('alert_episodes', schema=None) as batch_op:
        batch_op.drop_index('alert_episodes_ceasefire_start')

    op.drop_table('alert_episodes')
