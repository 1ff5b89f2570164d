"""Exception tree of the bridge: one root, subclasses say what the caller should do.

- ``ProtocolError``: the peer sent something malformed or incompatible; reject
  that message (or close the link with a reason), never crash.
- ``PairingError`` and subclasses: pairing failed; ``PairingCodeError`` means
  the code was wrong (let the user retry), ``PairingClosedError`` means the
  pairing window is over (start a new one).
- ``CertificateError``: a certificate is bad, expired or revoked; re-pair.
- ``LinkError``: the connection failed; retry later with backoff.
- ``OutboxError`` and subclasses: the durable outbox cannot take the message;
  ``OutboxFullError`` when the size bound is reached and only events remain,
  ``OutboxStorageError`` when SQLite itself fails (disk full, read-only, I/O).
- ``DeferMessage``: raised *by* a message handler (``HubHandler.on_message``
  or CarLink's ``on_message``) that cannot take a durable message now; the
  link acks neither it nor anything after it and closes with 4005 ("retry
  soon"), so the sender's outbox resends it after reconnecting.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "CertificateError",
    "DeferMessage",
    "LinkError",
    "OutboxError",
    "OutboxFullError",
    "OutboxStorageError",
    "PairingClosedError",
    "PairingCodeError",
    "PairingError",
    "ProtocolError",
]


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


class ProtocolError(BridgeError):
    """A message is malformed, too large, or uses an incompatible protocol version."""


class PairingError(BridgeError):
    """Pairing failed (base class)."""


class PairingCodeError(PairingError):
    """The pairing code was wrong: key confirmation failed."""


class PairingClosedError(PairingError):
    """The pairing window expired or its attempts are exhausted."""


class CertificateError(BridgeError):
    """A certificate is invalid, from another CA, expired, not yet valid or revoked."""


class LinkError(BridgeError):
    """A connection-level failure (refused, reset, TLS handshake, closed by the peer)."""


class OutboxError(BridgeError):
    """The durable outbox could not accept or serve a message (base class)."""


class OutboxFullError(OutboxError):
    """The outbox reached its size bound and holds only messages it may not drop."""


class OutboxStorageError(OutboxError):
    """SQLite failed underneath the outbox or ledger (disk full, read-only file, I/O)."""


class DeferMessage(BridgeError):
    """Raised by a message handler: "I could not take this message; send it again later".

    The link does not ack the message (nor anything after it on that link),
    closes with code 4005 and ``str(self)`` as the reason, and the sender's
    outbox resends it once it has reconnected. ``retry_after`` (seconds, or
    None) is the hint the peer gets for when to reconnect.
    """

    def __init__(
        self, reason: str = "message deferred", *, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
