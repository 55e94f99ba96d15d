"""Entry point: `python -m migrate` (see migrate/cli.py and `python -m migrate --help`)."""

from migrate.cli import main

raise SystemExit(main())
