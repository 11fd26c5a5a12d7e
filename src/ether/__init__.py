"""Ether: turn the methods of ordinary classes into pub/sub endpoints and services.

`from ether import ether` is the facade (tap, start, pub, subscribe, listen,
shutdown); the decorators annotate methods; Session/Inbox/Sender are the
shared-memory transport underneath. Importing the package starts nothing and
creates nothing.
"""
from ._facade import ether as ether
from ._spec._decorators import ether_cleanup as ether_cleanup
from ._spec._decorators import ether_get as ether_get
from ._spec._decorators import ether_save as ether_save
from ._spec._decorators import ether_sync as ether_sync
from ._spec._decorators import ether_init as ether_init
from ._spec._decorators import ether_pub as ether_pub
from ._spec._decorators import ether_save_all as ether_save_all
from ._spec._decorators import ether_shutdown as ether_shutdown
from ._spec._decorators import ether_start as ether_start
from ._spec._decorators import ether_sub as ether_sub
from ._core._arena import ArenaFull as ArenaFull
from ._errors import ConfigError as ConfigError
from ._errors import EtherError as EtherError
from ._errors import InboxClosed as InboxClosed
from ._errors import InboxExists as InboxExists
from ._errors import InboxFull as InboxFull
from ._errors import InboxNotFound as InboxNotFound
from ._errors import MessageTooLarge as MessageTooLarge
from ._errors import RingCorrupt as RingCorrupt
from ._errors import SegmentError as SegmentError
from ._errors import SessionClosed as SessionClosed
from ._errors import SessionExists as SessionExists
from ._errors import SessionNotFound as SessionNotFound
from ._errors import ShmSpaceError as ShmSpaceError
from ._errors import RemoteError as RemoteError
from ._errors import ServiceGone as ServiceGone
from ._errors import ServiceNotFound as ServiceNotFound
from ._errors import SyncFailed as SyncFailed
from ._errors import Timeout as Timeout
from ._errors import TooManyProducers as TooManyProducers
from ._errors import WouldBlock as WouldBlock
from ._core._inbox import Inbox as Inbox
from ._core._inbox import InboxStatistics as InboxStatistics
from ._core._sender import Loan as Loan
from ._core._sender import Sender as Sender
from ._core._sender import SenderStatistics as SenderStatistics
from ._core._session import Session as Session
from ._core._session import remove_stale_sessions as remove_stale_sessions

__version__ = "0.1.0"

__all__ = [
    "ArenaFull",
    "ether", "ether_cleanup", "ether_get", "ether_init", "ether_pub", "ether_save",
    "ether_save_all", "ether_shutdown", "ether_start", "ether_sub", "ether_sync",
    "RemoteError", "ServiceGone", "ServiceNotFound", "SyncFailed",
    "ConfigError", "EtherError", "Inbox", "InboxClosed", "InboxExists", "InboxFull",
    "InboxNotFound", "InboxStatistics", "Loan", "MessageTooLarge", "RingCorrupt",
    "SegmentError", "Sender", "SenderStatistics", "Session", "SessionClosed", "SessionExists",
    "SessionNotFound", "ShmSpaceError", "Timeout", "TooManyProducers", "WouldBlock",
    "remove_stale_sessions",
]
