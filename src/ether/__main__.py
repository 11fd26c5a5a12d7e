"""``python -m ether``: the same as the ``ether`` command."""
from .cli import main

raise SystemExit(main())
