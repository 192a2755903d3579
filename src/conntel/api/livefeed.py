"""One store poll per account per process, however many live tails watch that account.

An `AccountFeed` reads the account's new events (in commit order) and health changes
every `POLL_SECONDS` while anyone watches (at once when this process wrote some),
encodes each message once, and hands every watcher the messages it wants (its
connector's, or all) in a mailbox bounded by bytes. It also re-authorizes
each distinct credential among its watchers before every poll, so a revoked or expired
credential ends every stream it opened within a second, at the cost of one store read
per credential rather than one per stream.

A watcher that does not read (a slow client: its socket's buffer is full, so its
generator stops taking from the mailbox) never holds up the others: once its mailbox
holds more than `MAILBOX_BYTES`, it is ended with a message that says from where to
resume (`Last-Event-ID`), and the feed forgets it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from conntel.api.auth import Authenticator
from conntel.api.errors import ApiError, internal_error, store_unavailable
from conntel.api.observability import Metrics
from conntel.credentials import READ_ACCEPTS
from conntel.events import MAX_PAYLOAD_BYTES
from conntel.health import HealthChange
from conntel.store.base import HealthPosition, NotedHealth, Store, StreamedEvent

POLL_SECONDS = 0.25
# A write through this process makes its feed look sooner, but no sooner than this after its last look:
# a feed that read after every write would wake every stream for every small batch.
NUDGED_POLL_SECONDS = 0.1
# How often a credential is read afresh from the store: with a poll's wait on top it stays within the
# second revocation takes everywhere else (the credential cache's TTL).
RECHECK_SECONDS = 0.5
BATCH = 500
# At most this many bytes of payloads read at once (or one event): a catching-up feed's memory is
# bounded by bytes, not by its count of events.
BATCH_BYTES = 2 << 20
# A watcher's unread messages beyond this many bytes: it has fallen too far behind and is ended.
MAILBOX_BYTES = 8 << 20
log = logging.getLogger("conntel")

Encode = Callable[[StreamedEvent], bytes]
EncodeHealth = Callable[[HealthChange], bytes]
Refusal = tuple[ApiError, str]


class Ended(Exception):
    """The watcher's stream is over: `refusal` is why (and what to tell the client)."""

    def __init__(self, refusal: Refusal | None):
        super().__init__(refusal[1] if refusal else "fell_behind")
        self.refusal = refusal  # None: it fell behind; the stream knows where it stopped


class Watcher:
    """One open stream: its filter, its credential, and its mailbox of encoded messages."""

    def __init__(self, connector_id: str | None, credentials: dict[str, str], position: int):
        self.connector_id = connector_id
        self.credentials = credentials
        self.credential_key = tuple(sorted(credentials.items()))
        self.position = position  # messages after this position go in the mailbox
        self._mail: collections.deque[tuple[int, bytes]] = collections.deque()
        self._bytes = 0
        self._ended: Ended | None = None
        self._wake = asyncio.Event()

    def offer(self, last_seq: int, message: bytes) -> None:
        if self._ended is not None:
            return
        self._mail.append((last_seq, message))
        self._bytes += len(message)
        self.position = last_seq
        if self._bytes > MAILBOX_BYTES:
            self._mail.clear()
            self.end(None)
        self._wake.set()

    def end(self, refusal: Refusal | None) -> None:
        if self._ended is None:
            self._ended = Ended(refusal)
            self._wake.set()

    @property
    def ended(self) -> bool:
        return self._ended is not None

    async def take(self, quiet_seconds: float, most_bytes: int) -> tuple[int, bytes] | None:
        """The oldest messages waiting, at most `most_bytes` of them (or the oldest delivery), and the last
        one's position; None after `quiet_seconds`; raises Ended once the mailbox is empty and the stream is
        over. What is not taken still counts against MAILBOX_BYTES."""
        if not self._mail and self._ended is None:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), quiet_seconds)
        if self._mail:
            last, message = self._mail.popleft()
            taken = [message]
            size = len(message)
            while self._mail and size + len(self._mail[0][1]) <= most_bytes:
                last, message = self._mail.popleft()
                taken.append(message)
                size += len(message)
            self._bytes -= size
            return last, b"".join(taken)
        if self._ended is not None:
            raise self._ended
        return None


class AccountFeed:
    def __init__(self, hub: LiveHub, account_id: str, position: int, health_position: HealthPosition):
        self.hub = hub
        self.account_id = account_id
        self.position = position
        self.health_position = health_position
        self.watchers: set[Watcher] = set()
        self.nudged = asyncio.Event()
        self._fresh_at: dict[tuple[tuple[str, str], ...], float] = {}
        self.task = asyncio.create_task(self._run(), name=f"live feed {account_id}")

    async def _run(self) -> None:
        try:
            while self.watchers:
                await self._authorize()
                self.hub.metrics.live_polls.inc()
                events = await self.hub.store.events_after(self.account_id, self.position, None, BATCH, BATCH_BYTES)
                if events:
                    self.position = events[-1].seq
                    self._deliver(events)
                changes = await self.hub.store.health_changes_after(self.account_id, self.health_position, BATCH)
                if changes:
                    self.health_position = changes[-1].position
                    self._deliver_health(changes)
                if events and (
                    len(events) == BATCH or sum(len(e.e_json) for e in events) > BATCH_BYTES - MAX_PAYLOAD_BYTES
                ):
                    continue  # catching up: no pause
                await asyncio.sleep(NUDGED_POLL_SECONDS)
                if not self.nudged.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.nudged.wait(), POLL_SECONDS - NUDGED_POLL_SECONDS)
                self.nudged.clear()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if self.hub.store.is_unavailable(error):
                # As a request would get a 503: one log line, and a last message the clients can act on
                # (reconnect with Last-Event-ID once the database is back: nothing is lost).
                log.warning("database unavailable on a live tail: %s: %s; streams ended", type(error).__name__, error)
                self._end_all((store_unavailable(1), "store_unavailable"))
            else:
                log.exception("live feed of account %s failed; its streams ended", self.account_id)
                self._end_all((internal_error(), "internal_error"))
        finally:
            self.hub.forget(self)

    async def _authorize(self) -> None:
        """Each distinct credential once, from the store every RECHECK_SECONDS (expiry: every time)."""
        groups: dict[tuple[tuple[str, str], ...], list[Watcher]] = collections.defaultdict(list)
        for watcher in self.watchers:
            groups[watcher.credential_key].append(watcher)
        now = time.monotonic()
        for key in [key for key in self._fresh_at if key not in groups]:
            del self._fresh_at[key]
        for key, watchers in groups.items():
            fresh = now - self._fresh_at.get(key, 0.0) >= RECHECK_SECONDS
            if fresh:
                self._fresh_at[key] = now
            refused = await self.hub.auth.still_allowed(watchers[0].credentials, self.account_id, READ_ACCEPTS, fresh)
            if refused is not None:
                for watcher in watchers:
                    self._drop(watcher, refused)

    def _deliver(self, events: list[StreamedEvent]) -> None:
        encoded = [(event.connector_id, event.seq, self.hub.encode(event)) for event in events]
        everything: tuple[int, bytes] | None = None
        per_connector: dict[str, tuple[int, bytes] | None] = {}
        for watcher in list(self.watchers):
            if watcher.connector_id is None:
                if everything is None:
                    everything = _joined(encoded)
                mail: tuple[int, bytes] | None = everything
            else:
                if watcher.connector_id not in per_connector:
                    per_connector[watcher.connector_id] = _joined(m for m in encoded if m[0] == watcher.connector_id)
                mail = per_connector[watcher.connector_id]
            if mail is not None and mail[0] > watcher.position:
                if encoded[0][1] <= watcher.position:  # it starts past part of this batch (rare): its own cut
                    mail = _joined(
                        m for m in encoded if m[1] > watcher.position and watcher.connector_id in (None, m[0])
                    )
                if mail is not None:
                    watcher.offer(*mail)
            if watcher.ended:
                self.watchers.discard(watcher)

    def _deliver_health(self, changes: list[NotedHealth]) -> None:
        """Health changes carry no position (`id`): each watcher's stays that of its last event."""
        encoded = [(noted.change.connector_id, self.hub.encode_health(noted.change)) for noted in changes]
        everything = b"".join(message for _, message in encoded)
        for watcher in list(self.watchers):
            if watcher.connector_id is None:
                mail = everything
            else:
                mail = b"".join(message for connector_id, message in encoded if connector_id == watcher.connector_id)
            if mail:
                watcher.offer(watcher.position, mail)
            if watcher.ended:
                self.watchers.discard(watcher)

    def _drop(self, watcher: Watcher, refusal: Refusal | None) -> None:
        watcher.end(refusal)
        self.watchers.discard(watcher)

    def _end_all(self, refusal: Refusal) -> None:
        for watcher in list(self.watchers):
            self._drop(watcher, refusal)


def _joined(messages: Iterable[tuple[str, int, bytes]]) -> tuple[int, bytes] | None:
    parts = list(messages)
    return (parts[-1][1], b"".join(part[2] for part in parts)) if parts else None


class LiveHub:
    """The process's feeds, one per watched account, started by the first watcher and ended with the last."""

    def __init__(
        self, store: Store, auth: Authenticator, encode: Encode, encode_health: EncodeHealth, metrics: Metrics
    ):
        self.store = store
        self.auth = auth
        self.encode = encode
        self.encode_health = encode_health
        self.metrics = metrics
        self.feeds: dict[str, AccountFeed] = {}

    async def watch(self, account_id: str, watcher: Watcher) -> int:
        """Adds the watcher to its account's feed; returns the feed's position: the watcher's mailbox gets
        what follows it, and what lies between the watcher's own position and it is the watcher's to read."""
        feed = self.feeds.get(account_id)
        if feed is None:
            position = await self.store.stream_position(account_id)
            health_position = await self.store.health_position(account_id)
            feed = self.feeds.get(account_id)  # another watcher may have started it meanwhile
            if feed is None:
                feed = self.feeds[account_id] = AccountFeed(self, account_id, position, health_position)
                self.metrics.live_feeds.inc()
        feed.watchers.add(watcher)
        watcher.position = max(watcher.position, feed.position)
        return feed.position

    def nudge(self, account_id: str) -> None:
        """Events of the account were just written through this process: its feed looks at once. (Writes
        through other processes are seen at the next poll.)"""
        feed = self.feeds.get(account_id)
        if feed is not None:
            feed.nudged.set()

    def leave(self, account_id: str, watcher: Watcher) -> None:
        feed = self.feeds.get(account_id)
        if feed is not None:
            feed.watchers.discard(watcher)

    def forget(self, feed: AccountFeed) -> None:
        if self.feeds.get(feed.account_id) is feed:
            del self.feeds[feed.account_id]
            self.metrics.live_feeds.dec()
