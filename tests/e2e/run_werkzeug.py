"""Serve ``module:attribute`` with the werkzeug development server (for the e2e matrix)."""

import sys

from werkzeug.serving import run_simple
from werkzeug.utils import import_string

if __name__ == "__main__":
    host, port, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    run_simple(host, port, import_string(target), threaded=True)
