"""Reproduction benchmark: ``python benchmarks/reproduce.py mkr [--seeds 3] [--datasets lastfm,book]``.

Trains the model's presets over seeds and prints the paper-vs-measured table; with
``--write-results docs/results.md`` it is also written there (same as ``kgrec reproduce``).
Run from the repository root with ``KGREC_DATA`` pointing at the data folder.
"""

import sys

from kgrec.cli import main

if __name__ == "__main__":
    sys.argv = ["kgrec", "reproduce", *sys.argv[1:]]
    main()
