"""The REST API (FastAPI; OpenAPI at /openapi.json). ``create_app(settings_or_db, keyring)``."""

from biowarden.web.app import create_app

__all__ = ["create_app"]
