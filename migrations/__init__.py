"""Alembic migrations of Podium's schema (`podium migrate`)."""
