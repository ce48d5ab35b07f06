import os
import sys

from galaxy_cellxgene.hdf5_env import restrict

restrict(os.environ)  # before cli imports h5py: HDF5 reads the variables when it starts

from galaxy_cellxgene.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
