"""``python -m emofer``: the same as the ``emofer`` command."""

import sys

from .cli import main

sys.exit(main())
