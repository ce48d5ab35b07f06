"""Test-only, put on PYTHONPATH by support/held_load.py: the view's `import flask` (the first
import of cellxgene's app, after its early front is listening) waits until the file named by
GALAXY_CELLXGENE_TEST_RELEASE exists. Nothing else changes; the runtime's code is untouched.

It waits while *running* flask's module, under flask's own import lock only: waiting in a finder
would hold the interpreter's global import lock and stop every other thread's imports."""

import importlib.machinery
import os
import sys
import time
from importlib.abc import Loader, MetaPathFinder


class _HeldLoader(Loader):
    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        release = os.environ.get("GALAXY_CELLXGENE_TEST_RELEASE", "")
        while release and not os.path.exists(release):
            time.sleep(0.02)  # waits for the test's file: a readiness check, not a delay
        self.loader.exec_module(module)


class _HoldFlask(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "flask":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _HeldLoader(spec.loader)
        return spec


sys.meta_path.insert(0, _HoldFlask())
