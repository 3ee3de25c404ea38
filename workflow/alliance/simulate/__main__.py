"""`python -m alliance.simulate`."""

from alliance.simulate.cli import main

raise SystemExit(main())
