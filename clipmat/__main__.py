"""``python -m clipmat``: the ``clipmat`` command (:mod:`clipmat.cli`)."""

import sys

from clipmat.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m clipmat"))
