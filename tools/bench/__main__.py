# `python -m tools.bench ...` from the repository, or `python tools/bench ...`.
import os
import sys

if __package__:
    from .cli import main
else:  # run as a folder: this folder is sys.path[0], its parent holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.cli import main

main()
