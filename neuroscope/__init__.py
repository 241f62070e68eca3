"""NeuroScope: mechanistic interpretability of refusal in chat language models."""

__version__ = "0.2.0"  # pyproject.toml's; tests/test_project.py keeps them equal
