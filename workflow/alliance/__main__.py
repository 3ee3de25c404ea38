"""`python -m alliance` runs the command-line interface."""

from alliance.cli import main

raise SystemExit(main())
