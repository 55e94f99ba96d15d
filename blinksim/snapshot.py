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
from pathlib import Path

from coincurve import PrivateKey
from flask import Flask, Response, request

from blinksim.state import SimState

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


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

    def save(self) -> None:
        # One writer at a time, from copy to rename: two requests saving at once must not let the
        # older copy land last and take back what the newer one recorded (an account, a payment).
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
    """Save after every request that may change the bank, and once more when the process exits."""
    snapshots = Snapshots(app.extensions["blinksim"]["state"], path)

    @app.after_request
    def save_after_change(response: Response) -> Response:
        if request.method != "GET":
            snapshots.save_or_say()
        return response

    atexit.register(snapshots.save_or_say)
