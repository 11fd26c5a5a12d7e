"""Every error Ether raises descends from EtherError; most also subclass the builtin
a caller would naturally catch."""


class EtherError(Exception):
    """Root of every Ether error."""


class ConfigError(EtherError, ValueError):
    """An argument or setting is invalid; the message names it and the valid range."""


class Timeout(EtherError, TimeoutError):
    """A wait ran out; the message says what was awaited and for how long."""


class WouldBlock(EtherError):
    """A ``*_nowait`` call found nothing to do at once."""


class InboxFull(Timeout):
    """A ``block`` send waited for space longer than its timeout."""


class InboxClosed(EtherError):
    """The inbox was closed, or its consumer process is gone."""


class InboxNotFound(EtherError, LookupError):
    """No live inbox has that name in the session."""


class InboxExists(EtherError, FileExistsError):
    """A live inbox already has that name in the session."""


class ClaimSkipped(EtherError):
    """This sender held a record uncommitted (its process was stopped, or a claim
    was left open) longer than the inbox's unblock timeout (ETHER_UNBLOCK_TIMEOUT),
    and the consumer skipped it so that the other senders could go on: it was not
    delivered. `sent` (on a send or send_many) tells how many messages went in."""


class MessageTooLarge(EtherError, ValueError):
    """A record is longer than the inbox's max_length."""


class TooManyProducers(EtherError):
    """Every producer slot of an inbox is held by a live sender."""


class SessionNotFound(EtherError, FileNotFoundError):
    """No live session has that name."""


class SessionExists(EtherError, FileExistsError):
    """A live session already has that name."""


class SegmentError(EtherError, OSError):
    """A shared-memory segment could not be created or failed validation on open."""


class ShmSpaceError(SegmentError):
    """/dev/shm has too little room for what was asked."""


class RingCorrupt(EtherError):
    """A value read from shared memory failed its bounds check."""


class ServiceNotFound(EtherError, LookupError):
    """No live instance serves the requested service."""


class ServiceGone(EtherError):
    """The instance serving a request died before it replied."""


class RemoteError(EtherError):
    """A service method raised, or its parameters failed validation.

    `type` is the remote exception's class name and `message` its text."""

    def __init__(self, message: str, *, type: str = "", remote: str = "", instance: str = ""):
        super().__init__(message)
        self.type = type
        self.remote = remote
        self.instance = instance


class SyncFailed(EtherError):
    """One or more instances failed an ether.sync; `failures` maps instance -> error."""

    def __init__(self, message: str, failures: dict):
        super().__init__(message)
        self.failures = failures


class SessionClosed(EtherError):
    """The session was shut down while this call waited."""


class MalformedMessage(EtherError, ValueError):
    """Bytes in an inbox that are not a well-formed Ether message (a bad envelope,
    payload or array handle)."""


class ValidationFailed(EtherError, ValueError):
    """A message did not fit the handler's parameters."""


class ArenaFull(EtherError):
    """No room in the publisher's arena for an array."""


class Dropped(ArenaFull):
    """The arena is full and every receiver's policy is drop: the message is dropped
    (and counted) instead of waited for. Internal to publishing."""
