"""``python -m kgrec``: the ``kgrec`` command; also the target of
``torchrun --nproc-per-node N -m kgrec train CONFIG``."""

from kgrec.cli import main

if __name__ == "__main__":
    main()
