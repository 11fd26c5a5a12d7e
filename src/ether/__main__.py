"""``python -m ether``: the same as the ``ether`` command."""
from ._cli import main

raise SystemExit(main())
