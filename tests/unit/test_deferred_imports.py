"""cellxgene's differential expression and distribution estimate are imported when first used, not
before the cells are served (deferred_imports.py); used, they are cellxgene's own modules."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

CHECK = textwrap.dedent(
    """
    import sys
    from galaxy_cellxgene import deferred_imports
    assert deferred_imports.defer() == list(deferred_imports.DEFERRED)
    import server.data_anndata.anndata_adaptor as adaptor
    print("scipy.stats" in sys.modules, "numba" in sys.modules, type(sys.modules["boto3"]).__name__)
    ttest = adaptor.diffexp_generic.diffexp_ttest  # the first use imports the real module
    import server.common.compute.diffexp_generic as real
    print("scipy.stats" in sys.modules, ttest is real.diffexp_ttest, type(real).__name__)
    """
)


def test_the_adaptor_loads_without_scipy_stats_numba_or_boto3_until_used() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "Deferred", "True", "True", "module"]


def test_two_threads_asking_at_once_get_the_same_real_module(tmp_path, monkeypatch) -> None:
    from galaxy_cellxgene import deferred_imports

    (tmp_path / "slow_pkg").mkdir()
    (tmp_path / "slow_pkg" / "__init__.py").write_text("")
    (tmp_path / "slow_pkg" / "heavy.py").write_text("import time\ntime.sleep(0.2)\nRUNS = []\nRUNS.append(1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "slow_pkg.heavy"
    assert deferred_imports.defer((name,)) == [name]
    stand_in = sys.modules[name]
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(stand_in.RUNS)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    real = sys.modules[name]
    assert real is not stand_in and type(real).__name__ == "module"
    assert got == [[1]] * 4 and got[0] is real.RUNS  # one run of the module, seen by every thread
    for module in ("slow_pkg.heavy", "slow_pkg"):
        monkeypatch.delitem(sys.modules, module)
