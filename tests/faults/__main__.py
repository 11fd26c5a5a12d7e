"""python -m tests.faults: run the fault suite and print its table (see run.py)."""
import os
import sys

if __name__ == "__main__":
    # The scenarios, their instances and their processes all import from tests/
    # (as under pytest): this package as `faults`, the instance classes as
    # `reliability_apps`.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from faults.run import main
    sys.exit(main())
