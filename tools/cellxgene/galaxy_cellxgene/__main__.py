import os
import sys

from galaxy_cellxgene.hdf5_env import restrict

restrict(os.environ)  # before cli imports h5py: HDF5 reads the variables when it starts

from galaxy_cellxgene.cli import main  # noqa: E402


def exit_now(status: int) -> None:
    """End the process once `main` has returned: every output is already written (atomic renames).
    A normal interpreter shutdown could hang for ever: a daemon thread stopped while it held h5py's
    lock (the column copy, the distribution estimate) blocks the main thread's last h5py dealloc
    (seen in CI: a view whose X was refused while it was served never exited)."""
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


if __name__ == "__main__":
    exit_now(main() or 0)
