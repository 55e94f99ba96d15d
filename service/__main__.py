"""`python -m service <command>`: see service/cli.py."""

from service.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
