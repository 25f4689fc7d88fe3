"""Alembic migrations of the read-model database."""
