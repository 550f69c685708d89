"""`python -m qaconv` runs the command line (also the entry point for torchrun)."""

from qaconv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
