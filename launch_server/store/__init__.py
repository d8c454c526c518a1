"""Persistence: sqlmodel tables and repositories (SQLite by default, PostgreSQL by URL), with
Alembic migrations applied on start."""
