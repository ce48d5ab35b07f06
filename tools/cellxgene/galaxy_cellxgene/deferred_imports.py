"""cellxgene modules the first page never needs, run when first used instead of at start-up.

cellxgene's data adaptor imports, at module level, its differential expression (scipy.stats), its
distribution estimate (numba) and, through its data locator, boto3 (for s3:// URLs): about 1 s of
a 100k-cell view's start under load (`python -X importtime`, docs/benchmarks.md issue 25) before
any cell can be served. The view never runs the estimate (it passes a fixed distribution and sets
the real one itself, distribution.py), never opens an s3:// URL,
and differential expression is asked for minutes later, if at all.

Each is registered as a stand-in module whose first attribute access imports the real one (under
a lock: two requests may ask at once) and hands over its attributes; cellxgene's code holds the
stand-in and never sees a difference. Not importlib's LazyLoader: in Python 3.11 the `import`
statement itself reads `__spec__` of a module found in sys.modules, which runs a lazy module at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

DEFERRED = (
    "server.common.compute.diffexp_generic",
    "server.common.compute.estimate_distribution",
    # cellxgene's data locator reads s3:// URLs with them; the view opens a local file.
    "boto3",
    "botocore",
)
_lock = threading.Lock()


class Deferred(types.ModuleType):
    """Stands in for module `name` until one of its attributes is read."""

    def __init__(self, name: str, spec) -> None:
        super().__init__(name)
        self.__spec__ = spec  # what the import statement reads: present, so nothing is run

    def __getattr__(self, attr: str):  # only for attributes the stand-in lacks: all of the module's
        return getattr(real_module(self.__name__), attr)


def real_module(name: str) -> types.ModuleType:
    """The module itself, imported now if only its stand-in is there."""
    with _lock:
        module = sys.modules.get(name)
        if module is None or isinstance(module, Deferred):
            sys.modules.pop(name, None)
            module = importlib.import_module(name)  # also puts it on its parent package
        return module


def defer(names: tuple[str, ...] = DEFERRED) -> list[str]:
    """Register a stand-in for each module not imported yet; the names deferred."""
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)  # imports the parent packages: cheap, no scipy
        if spec is None:
            continue  # cellxgene without it: its own import will say so
        sys.modules[name] = stand_in = Deferred(name, spec)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)
        deferred.append(name)
    return deferred
