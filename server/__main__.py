"""`python -m gradserve.server [options]`: the same as `gradserve serve [options]`."""

import sys

from ._cli import serve

if __name__ == "__main__":
    sys.exit(serve(prog="python -m gradserve.server"))
