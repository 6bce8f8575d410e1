"""Which version an alias points at, cheaply enough for a cache key.

A step that compares with the champion (evaluate.gate) must re-run when the champion moves,
so its cache key holds the alias's current version. On a SQLite registry this is one query
on MLflow's `registered_model_aliases` table, without importing MLflow (an all-cached run
stays fast); anything else, or a table that is not there, asks MLflow itself.
"""

from __future__ import annotations

import sqlite3

from loopline.spec.paths import sqlite_file


def alias_version(registry_uri: str, name: str, alias: str) -> str:
    """The version `alias` points at, or "" when there is none (or no registry yet)."""
    if (database := sqlite_file(registry_uri)) is not None:
        if not database.is_file():
            return ""
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
                row = db.execute("SELECT version FROM registered_model_aliases "
                                 "WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            return str(row[0]) if row else ""
        except sqlite3.Error:
            pass  # an older or newer schema: ask MLflow
    return _alias_version_from_mlflow(registry_uri, name, alias)


def _alias_version_from_mlflow(registry_uri: str, name: str, alias: str) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(registry_uri=registry_uri)
                   .get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return ""
