"""The demo: a login's whole life on a ManualClock, told step by step.

Everything runs on the in-memory storage with a clock that only moves when
the demo moves it, so the output is the same on every run (but for the ids,
which are shown only as handles, as a log should).
"""

from __future__ import annotations

from collections.abc import Callable

from .clock import ManualClock
from .errors import SessionDeviceMismatchError, SessionExpiredError, SessionNotFoundError
from .manager import RenewHooks, UserSessionManager
from .options import Timeouts
from .session import Device, SessionContext, SessionMetadata
from .storage.memory import InMemorySessionStorage
from .storage.protocol import DeleteReason

MINUTE = 60
HOUR = 60 * MINUTE


def run(say: Callable[[str], None] = print) -> None:
    """Run the demo, passing each line of the story to `say`."""
    clock = ManualClock(1_700_000_000)
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(
        storage,
        session_ttl=24 * HOUR,
        timeouts=Timeouts(
            idle=30 * MINUTE, renewal=12 * HOUR, renewal_grace=5, absolute=7 * 24 * HOUR
        ),
        renew_hooks=RenewHooks(
            on_already_renewed_here=lambda old: say(
                f"           (hook) '{short(old)}' was already renewed by this manager"
            )
        ),
    )

    def short(session_id: str) -> str:
        return UserSessionManager.hash(session_id)[:10]

    def on_delete(subject: str, session_id: str, _: SessionMetadata, reason: DeleteReason) -> None:
        say(f"           (event) session '{short(session_id)}' of {subject} removed: {reason.name}")

    storage.add_listener(on_delete)
    laptop = SessionContext(ip="10.0.0.7", device=Device("Firefox", "desktop"))
    phone = SessionContext(ip="10.0.0.8", device=Device("Safari", "mobile"))

    start = clock()

    def at() -> str:
        elapsed = clock() - start
        hours, rest = divmod(elapsed, HOUR)
        return f"[{hours:2d}h{rest // MINUTE:02d}m{rest % MINUTE:02d}s]"

    say(
        "usersession demo: TTL 24 h, idle 30 min, renewal after 12 h with a 5 s grace, "
        "logins last at most 7 days."
    )
    say("Ids are shown as the first characters of their handle, never raw.")
    session_id = manager.create("uid1", laptop)
    say(f"{at()} uid1 logs in from a laptop: session '{short(session_id)}'")
    metadata, _ = manager.read("uid1", session_id, laptop)
    say(f"{at()} read it: ip {metadata.ip}, expires in {metadata.expires_at - clock()} s")
    try:
        manager.read("uid1", session_id, SessionContext(ip="10.0.0.9", device=phone.device))
    except SessionDeviceMismatchError as error:
        say(f"{at()} the laptop's id used from a phone: refused, {error.code}")
    try:
        manager.read("uid1", session_id, SessionContext(ip="10.0.0.9"))
    except SessionDeviceMismatchError:
        say(f"{at()} ... and from a context that names no device: refused too (fails closed)")

    phone_id = manager.create("uid1", phone)
    say(f"{at()} uid1 logs in from a phone too: session '{short(phone_id)}'")
    say(f"{at()} uid1 has {len(manager.read_all('uid1'))} active sessions (listed by handle)")

    clock.advance(20 * MINUTE)
    manager.read("uid1", session_id, laptop)
    say(f"{at()} the laptop reads its session; the phone stays quiet")
    clock.advance(11 * MINUTE)
    try:
        manager.read("uid1", phone_id, phone)
    except SessionExpiredError as error:
        say(f"{at()} the phone comes back after 31 min: {error.code}")
    say(f"{at()} uid1 has {len(manager.read_all('uid1'))} active session")

    # Keep the laptop busy until its session is 12 h old: due for renewal.
    clock.advance(9 * MINUTE)
    _, renewed = manager.read("uid1", session_id, laptop)
    while renewed is None:
        clock.advance(20 * MINUTE)
        _, renewed = manager.read("uid1", session_id, laptop)
    say(f"{at()} the laptop kept reading every 20 min; this read renewed the session:")
    say(f"{at()}   new id '{short(renewed)}' goes to the client")
    successor, _ = manager.read("uid1", renewed, laptop)
    say(
        f"{at()}   same login: it began {(clock() - successor.authenticated_at) // HOUR} h ago, "
        f"ends by {(successor.authenticated_at + 7 * 24 * HOUR - clock()) // HOUR} h from now"
    )
    _, again = manager.read("uid1", session_id, laptop)
    say(f"{at()} a request already in flight with the old id still works (renewed: {again})")
    clock.advance(5)
    try:
        manager.read("uid1", session_id, laptop)
    except SessionNotFoundError as error:
        say(f"{at()} 5 s later the grace is over and the old id is gone: {error.code}")
    session_id = renewed

    other = manager.create("uid1", phone)
    say(f"{at()} the phone logs in again: session '{short(other)}'")
    listing = manager.read_all("uid1")
    say(f"{at()} uid1 has {len(listing)} active sessions")
    phone_handle = next(h for h, m in listing.items() if m.device == phone.device)
    say(f"{at()} 'log out that device' from a devices page: {manager.revoke('uid1', phone_handle)}")
    for _ in range(3):
        manager.create("uid1", phone)
    say(f"{at()} uid1 logs in from 3 more devices, then changes their password:")
    removed = manager.delete_all("uid1", keep=session_id)
    say(f"{at()}   'sign out everywhere else' (delete_all keep=) removes {removed}")
    say(f"{at()} the laptop logs out: {manager.logout('uid1', session_id)} session of its login")
    say(f"{at()} logging out again removes {manager.logout('uid1', session_id)}")
    say(f"{at()} the storage holds {len(storage)} sessions")
