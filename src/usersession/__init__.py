"""usersession: stateful, server-side user sessions.

Create, read, list, renew and delete the login sessions of a subject (a user
id), with an absolute TTL, an optional idle timeout, automatic renewal with a
grace period for the old id, logins that renewals carry on (an absolute
login lifetime, logout of the whole login), and device binding. The default
storage lives in process memory; see README.md for the Redis path.

The same source installs as pure Python or with its hot modules compiled by
mypyc (README, "Two builds"); `usersession.compiled` says which is running.
"""

from typing import TYPE_CHECKING

from ._build import compiled_modules as _compiled_modules
from .async_manager import AsyncUserSessionManager
from .clock import Clock, ManualClock, system_clock
from .errors import (
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    SessionDeviceMismatchError,
    SessionError,
    SessionExpiredError,
    SessionLimitError,
    SessionNotFoundError,
    SessionStorageError,
    SnapshotError,
)
from .garbage_collector import BucketGarbageCollector
from .manager import (
    ReadHook,
    RenewHooks,
    UserSessionManager,
    check_same_device,
    check_same_device_if_known,
)
from .options import Timeouts
from .session import Device, SessionContext, SessionMetadata
from .storage.limits import LimitPolicy
from .storage.memory import InMemorySessionStorage
from .storage.protocol import AsyncSessionStorage, DeleteReason, Listener, SessionStorage
from .storage.stats import StorageStats
from .sweeper import Autosaver, Sweeper, start_sweeping, sweep_periodically

if TYPE_CHECKING:  # the `redis` extra; imported on first use (see __getattr__)
    from .storage.redis import AsyncRedisSessionStorage as AsyncRedisSessionStorage
    from .storage.redis import RedisSessionStorage as RedisSessionStorage

__version__ = "0.1.0"

compiled: bool = all(_compiled_modules().values())
"""True when the modules mypyc compiles (`_build.COMPILED_MODULES`) are the
compiled extensions, False when they are the pure Python source: an editable
install, `USERSESSION_PURE_PYTHON=1`, or a platform without a C compiler."""

__all__ = [
    "AsyncSessionStorage",
    "AsyncUserSessionManager",
    "Autosaver",
    "BucketGarbageCollector",
    "Clock",
    "DeleteReason",
    "Device",
    "ErrorCode",
    "InMemorySessionStorage",
    "InvalidOptionsError",
    "InvalidTypeError",
    "LimitPolicy",
    "Listener",
    "ManualClock",
    "ReadHook",
    "RenewHooks",
    "SessionContext",
    "SessionDeviceMismatchError",
    "SessionError",
    "SessionExpiredError",
    "SessionLimitError",
    "SessionMetadata",
    "SessionNotFoundError",
    "SessionStorage",
    "SessionStorageError",
    "SnapshotError",
    "StorageStats",
    "Sweeper",
    "Timeouts",
    "UserSessionManager",
    "__version__",
    "check_same_device",
    "check_same_device_if_known",
    "compiled",
    "start_sweeping",
    "sweep_periodically",
    "system_clock",
]


_REDIS_NAMES = frozenset({"RedisSessionStorage", "AsyncRedisSessionStorage"})


def __getattr__(name: str) -> object:
    # The Redis storages need the optional `redis` package: import it only
    # when one is asked for, so `import usersession` works without it.
    if name in _REDIS_NAMES:
        from .storage import redis as redis_storage  # noqa: PLC0415

        return getattr(redis_storage, name)
    raise AttributeError(f"module 'usersession' has no attribute {name!r}")
