"""Control-plane store: SQLAlchemy 2 models, Alembic migrations, sessions (SQLite default, PostgreSQL).

Each area keeps its tables in its own module (``store/<area>_tables.py``) on the shared ``Base`` and its
own Alembic branch in ``store/migrations/versions`` (``branch_labels=(<area>,)``, ``down_revision=None``
for its first revision); ``migrate()`` upgrades every head.
"""

from biowarden.store.db import Database, connect, migrate

__all__ = ["Database", "connect", "migrate"]
