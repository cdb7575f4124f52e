"""``python -m inline_ips`` runs the command line."""

import sys

from inline_ips.cli import main

sys.exit(main())
