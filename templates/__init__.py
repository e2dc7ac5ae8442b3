"""The dossier's Jinja2 templates and stylesheet: installed as ``evidence._templates``.

They stay at the top of the repository; pyproject.toml maps this folder into the package so a
wheel carries them, and the code finds them with ``importlib.resources``.
"""
