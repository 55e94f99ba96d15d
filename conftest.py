"""Root pytest configuration: the session-wide real servers live in tests/fixtures."""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.simulator",
    "tests.fixtures.payments",
]
