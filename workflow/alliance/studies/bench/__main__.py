"""`python -m alliance.studies.bench` (`make bench`)."""

from alliance.studies.bench.cli import main

raise SystemExit(main())
