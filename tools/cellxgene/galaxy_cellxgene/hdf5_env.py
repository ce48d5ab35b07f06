"""Where HDF5 may resolve relative external-storage and virtual-dataset paths, and load filter
plugins from: nowhere.

HDF5 reads `HDF5_EXTFILE_PREFIX` and `HDF5_VDS_PREFIX` once, when the library starts (at the
first `import h5py`), so this module imports nothing of HDF5 and runs first in `__main__`.
Without a prefix HDF5 resolves a relative path against the working directory, so an h5ad whose
X is stored in "../../galaxy.yml" would read the job's surroundings; under a directory that
does not exist, no relative path resolves at all. HDF5 applies no prefix to absolute paths:
those are refused by the scan in containment.py before any file is read. Both together are
the defence: a missed check still cannot reach a file through a relative path.

Filter plugins: a dataset naming a filter HDF5 lacks makes HDF5 load and initialise every
shared library in `HDF5_PLUGIN_PATH` (inherited from the job's environment: conda activation
sets it) to look for it, code chosen by whoever controls that folder, run on a file's request.
The runtime needs no plugin (anndata writes gzip or lzf, both built in), so plugin loading is
switched off (`HDF5_PLUGIN_PRELOAD="::"` is HDF5's documented "load none") and the path points
nowhere; the scan refuses such datasets by the filter's name (hdf5_walk.py).
"""

from __future__ import annotations

from collections.abc import MutableMapping

NOWHERE = "/nonexistent/galaxy-cellxgene-refuses-outside-data/"
PREFIX_VARIABLES = ("HDF5_EXTFILE_PREFIX", "HDF5_VDS_PREFIX", "HDF5_PLUGIN_PATH")
NO_PLUGINS = "::"


def restrict(environ: MutableMapping[str, str]) -> None:
    for name in PREFIX_VARIABLES:
        environ[name] = NOWHERE
    environ["HDF5_PLUGIN_PRELOAD"] = NO_PLUGINS
