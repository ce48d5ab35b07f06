import sys

from galaxy_cellxgene.cli import main

sys.exit(main())
