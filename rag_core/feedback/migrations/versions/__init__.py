"""Alembic revision files (a package so the wheel ships them)."""
