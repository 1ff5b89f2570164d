"""A test hook that freezes the process at one chosen point, for crash tests from outside.

With ``CARHUB_FAILPOINT=after_handler:<seq>`` in the environment, the link
freezes the whole process (a blocking sleep on the event loop thread) right
after the handler returned for a durable message with that seq and before the
message is recorded and acked: the window in which a crash makes the sender
resend a message that was already acted on. Before freezing it appends
``<name> <seq>`` to the file named by ``CARHUB_FAILPOINT_FILE`` (if set), so a
test knows the point is reached and kills the process with SIGKILL. Without
the variable (always, outside tests) this does nothing.
"""

from __future__ import annotations

import os
import threading
from typing import Final

__all__ = ["reached"]

_SPEC: Final = os.environ.get("CARHUB_FAILPOINT", "")
_FILE: Final = os.environ.get("CARHUB_FAILPOINT_FILE", "")
_FREEZE_S: Final = 600.0


def reached(name: str, seq: int) -> None:
    """Freeze here if the environment asks for the failpoint ``name`` at ``seq``."""
    if not _SPEC or f"{name}:{seq}" != _SPEC:
        return
    # Low-level calls on purpose: Home Assistant turns open() and time.sleep() on
    # its event loop into errors, and blocking the loop is the point here.
    if _FILE:
        fd = os.open(_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {seq}\n".encode())
        finally:
            os.close(fd)
    threading.Event().wait(_FREEZE_S)
