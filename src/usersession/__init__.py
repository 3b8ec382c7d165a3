"""usersession: stateful, server-side user sessions.

Create, read, list, renew and delete the login sessions of a subject (a user
id), with an absolute TTL, an optional idle timeout, automatic renewal with a
grace period for the old id, and device binding. The default storage lives in
process memory; see README.md for the Redis path.
"""

from .clock import Clock, ManualClock, system_clock
from .errors import (
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    SessionDeviceMismatchError,
    SessionError,
    SessionExpiredError,
    SessionNotFoundError,
    SessionStorageError,
)
from .garbage_collector import BucketGarbageCollector
from .manager import ReadHook, RenewHooks, UserSessionManager, check_same_device
from .options import Timeouts
from .session import Device, SessionContext, SessionMetadata
from .storage.memory import InMemorySessionStorage
from .storage.protocol import AsyncSessionStorage, DeleteReason, Listener, SessionStorage

__version__ = "0.1.0"

__all__ = [
    "AsyncSessionStorage",
    "BucketGarbageCollector",
    "Clock",
    "DeleteReason",
    "Device",
    "ErrorCode",
    "InMemorySessionStorage",
    "InvalidOptionsError",
    "InvalidTypeError",
    "Listener",
    "ManualClock",
    "ReadHook",
    "RenewHooks",
    "SessionContext",
    "SessionDeviceMismatchError",
    "SessionError",
    "SessionExpiredError",
    "SessionMetadata",
    "SessionNotFoundError",
    "SessionStorage",
    "SessionStorageError",
    "Timeouts",
    "UserSessionManager",
    "__version__",
    "check_same_device",
    "system_clock",
]
