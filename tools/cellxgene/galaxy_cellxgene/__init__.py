"""Runtime behind the Galaxy interactive tool for cellxgene: check, prepare, serve, persist, merge."""

__version__ = "1.3.0+galaxy0"
