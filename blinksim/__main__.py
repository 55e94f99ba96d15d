"""`python -m blinksim --port N [--host H] [--threads 128] [--state-file PATH]`: run the simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from blinksim.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blinksim", description="Blink API simulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=128, help="request threads in the one worker process")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--state-file", type=Path, default=None,
        help="keep the bank in this file: loaded at start, saved after every change and at exit",
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.threads, args.log_level, args.state_file)


if __name__ == "__main__":
    main()
