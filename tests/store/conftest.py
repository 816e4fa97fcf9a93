"""The ``db`` fixture (SQLite and PostgreSQL) lives in tests/conftest.py, shared by every area."""
