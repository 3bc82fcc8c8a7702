"""Allows `python -m mmzoo`."""

import sys

from mmzoo.cli import main

sys.exit(main())
