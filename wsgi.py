"""The production entry point: `gunicorn -c gunicorn.conf.py wsgi:app`.

gunicorn imports this module in each worker after fork (preload_app is off), so the Postgres pool
and the Redis client are opened in the process that uses them.
"""

import atexit
import sys

from service import create_app
from service.config import ConfigError

# gunicorn's master stops for good when a worker exits with this status ("App failed to load");
# any other status makes it boot a new worker, which would fail the same way, forever.
GUNICORN_APP_LOAD_ERROR = 4
CONFIG_ERROR_EXIT_STATUS = 2

try:
    app = create_app()
except ConfigError as error:
    sys.stderr.write(f"blinkpos: {error}\n")
    sys.stderr.flush()
    under_gunicorn = "gunicorn.arbiter" in sys.modules
    raise SystemExit(GUNICORN_APP_LOAD_ERROR if under_gunicorn else CONFIG_ERROR_EXIT_STATUS) from None

atexit.register(app.extensions["blinkpos"].close)
