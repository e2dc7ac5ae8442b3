"""The store's Alembic migrations: installed as ``evidence._migrations``.

They stay at the top of the repository; pyproject.toml maps this folder into the package so a
wheel carries them, and ``evidence.store.db`` points Alembic at them with ``importlib.resources``.
"""
