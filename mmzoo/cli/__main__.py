"""Allows `python -m mmzoo.cli`."""

import sys

from mmzoo.cli import main

sys.exit(main())
