"""`--state-file`: the simulator's bank kept on disk, so a restarted simulator knows its accounts.

The whole state object is pickled rather than field by field, so whatever the state holds (and any
field added to it later) comes back without this module knowing it. Locks and callables (the lock,
the clock, the settlement listener) are rebuilt by the new process; signing keys are kept as their
secret bytes. Loading a pickle can run code:
the file is written readable only by its owner, and must never be one someone else can write.
"""

from __future__ import annotations

import atexit
import copyreg
import io
import os
import pickle
import sys
import threading
import time
from pathlib import Path

from coincurve import PrivateKey
from flask import Flask, Response, request

from blinksim.state import SimState

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
# A save copies the whole bank (8 ms at 1,000 invoices, 35 ms at 5,000, under the bank's lock):
# the calls of one sale that land within this delay share one save, made off the request path.
SAVE_DELAY_SECONDS = 0.2


def load(path: Path) -> SimState | None:
    """The saved bank, or None when there is none or it cannot be read (then the bank starts empty)."""
    try:
        saved = pickle.loads(path.read_bytes())
        state = SimState()
    except FileNotFoundError:
        return None
    except Exception as exc:  # an unreadable or incompatible file: say so and start afresh
        sys.stderr.write(f"blinksim: {path} not loaded ({type(exc).__name__}); starting with an empty bank\n")
        return None
    vars(state).update(saved)
    return state


class Snapshots:
    """Writes the state to `path` atomically (a temporary file renamed over it)."""

    def __init__(self, state: SimState, path: Path) -> None:
        self._state = state
        self._path = path
        self._write_lock = threading.Lock()
        self._failed = False
        self._changed = threading.Event()

    def save_soon(self) -> None:
        self._changed.set()

    def save_when_changed(self) -> None:
        """Runs in a thread of its own: one save per burst of changes."""
        while True:
            self._changed.wait()
            time.sleep(SAVE_DELAY_SECONDS)
            self._changed.clear()  # a change from here on is in this save or brings the next one
            self.save_or_say()

    def save(self) -> None:
        # One writer at a time, from copy to rename: two saves at once (the saving thread's and the
        # one at exit) must not let the older copy land last and take back what the newer one
        # recorded (an account, a payment).
        with self._write_lock:
            buffer = io.BytesIO()
            pickler = pickle.Pickler(buffer)
            pickler.dispatch_table = {**copyreg.dispatch_table, PrivateKey: _reduce_key}
            with self._state._lock:  # the bank's own lock: no transfer is half-recorded in the copy
                pickler.dump(_picklable(self._state))
            temporary = self._path.with_name(self._path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._path)

    def save_or_say(self) -> None:
        """Save; a failure costs the saved copy, never the request, and is reported once."""
        try:
            self.save()
        except Exception as exc:  # whatever failed, the bank in memory is intact
            if not self._failed:
                sys.stderr.write(f"blinksim: {self._path} not saved ({type(exc).__name__}: {exc})\n")
            self._failed = True


def _picklable(state: SimState) -> dict:
    return {
        name: value
        for name, value in vars(state).items()
        if not callable(value) and not isinstance(value, _LOCK_TYPES)
    }


def _reduce_key(key: PrivateKey) -> tuple:
    return PrivateKey, (key.secret,)  # the key object holds a C context that does not pickle


def keep_state(app: Flask, path: Path) -> None:
    """Save soon after every request that may change the bank, and once more when the process exits."""
    snapshots = Snapshots(app.extensions["blinksim"]["state"], path)
    threading.Thread(target=snapshots.save_when_changed, name="blinksim-snapshots", daemon=True).start()

    @app.after_request
    def save_after_change(response: Response) -> Response:
        if request.method != "GET":
            snapshots.save_soon()
        return response

    atexit.register(snapshots.save_or_say)
