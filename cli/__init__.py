"""The product's command lines, one module each, installed as console scripts (pyproject.toml):
``dssm-train``, ``dssm-index``, ``dssm-evaluate``, ``dssm-serve``, ``dssm-demo-data``. ``scripts/*.py`` are
thin wrappers over them, so every documented ``python scripts/X.py`` line keeps working."""
