"""Where HDF5 may resolve relative external-storage and virtual-dataset paths: nowhere.

HDF5 reads `HDF5_EXTFILE_PREFIX` and `HDF5_VDS_PREFIX` once, when the library starts (at the
first `import h5py`), so this module imports nothing of HDF5 and runs first in `__main__`.
Without a prefix HDF5 resolves a relative path against the working directory, so an h5ad whose
X is stored in "../../galaxy.yml" would read the job's surroundings; under a directory that
does not exist, no relative path resolves at all. HDF5 applies no prefix to absolute paths:
those are refused by the scan in containment.py before any file is read. Both together are
the defence: a missed check still cannot reach a file through a relative path.
"""

from __future__ import annotations

from collections.abc import MutableMapping

NOWHERE = "/nonexistent/galaxy-cellxgene-refuses-outside-data/"
PREFIX_VARIABLES = ("HDF5_EXTFILE_PREFIX", "HDF5_VDS_PREFIX")


def restrict(environ: MutableMapping[str, str]) -> None:
    for name in PREFIX_VARIABLES:
        environ[name] = NOWHERE
