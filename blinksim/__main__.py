"""`python -m blinksim --port N [--host 127.0.0.1] [--threads 128]`: run the Blink simulator."""

from __future__ import annotations

import argparse

from blinksim.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blinksim", description="Blink API simulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=128, help="request threads in the one worker process")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.threads, args.log_level)


if __name__ == "__main__":
    main()
