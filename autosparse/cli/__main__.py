"""``python -m autosparse.cli`` = the ``autosparse`` command."""

import sys

from autosparse.cli import main

sys.exit(main())
