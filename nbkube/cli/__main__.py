"""`python -m nbkube.cli`: the same as the `nbkube` console script (handy before `pip install`)."""

import sys

from nbkube.cli import main

sys.exit(main())
