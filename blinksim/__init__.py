"""The Blink simulator: Blink's GraphQL API and a /sim control API over an in-memory bank.

Run it as its own process (`python -m blinksim --port N`); the service reaches it only over HTTP.
"""
