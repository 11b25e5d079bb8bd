"""`python -m vecpg.studies ...` runs `vecpg study ...`."""

import sys

import vecpg  # noqa: F401  (one CPU device per core, the compile cache: before JAX starts)
from vecpg.studies.command import main

sys.exit(main())
