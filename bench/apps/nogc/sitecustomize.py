"""Put first on PYTHONPATH by `bench/instructions.py` for the Django page, in every Python it
counts (ours, uWSGI's embedded one, flup, the in-process limit): the cyclic garbage collector
stays off, so a count is the page's path, not where the collector's cadence happened to fall.
With it on, the same page counted 566k or 655k instructions per request as N went from 200 to
100, in our server as in the limit, which swamped the few percent a server adds."""

import gc
import sys

gc.disable()
print("bench/apps/nogc: the garbage collector is off", file=sys.stderr)
