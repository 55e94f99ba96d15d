"""`python -m blinksim --port N [--host H] [--threads 128] [--state-file PATH]`: run the simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from blinksim.schema import SCHEMA_PATH_ENV, schema_path
from blinksim.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blinksim", description="Blink API simulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=128, help="request threads in the one worker process")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--state-file", type=Path, default=None,
        help="keep the bank in this file: loaded at start, saved soon after every change and at exit",
    )
    args = parser.parse_args(argv)
    schema = schema_path()
    if not schema.is_file():
        # One line for `python -m service dev` to show, rather than a traceback in the log.
        raise SystemExit(
            f"blinksim: no Blink schema at {schema}: put the shared docs (../shared) beside the "
            f"repository, or set {SCHEMA_PATH_ENV} to the public-schema.graphql file"
        )
    serve(args.host, args.port, args.threads, args.log_level, args.state_file)


if __name__ == "__main__":
    main()
