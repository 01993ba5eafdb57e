"""``python -m archgen.cli``: the ``archgen`` command without its installed script."""

import sys

from . import main

sys.exit(main())
