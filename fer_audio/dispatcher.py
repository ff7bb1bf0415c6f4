"""Spoken cues through the user's speech-dispatcher, beside the screen reader.

Orca speaks through speech-dispatcher at priority ``message``. SSIP's rules
(speech-dispatcher ``doc/ssip.texi``, "Priority Categories") decide who waits:

* ``important`` is said at once and *cancels* whatever else is being spoken:
  it would cut the screen reader off in mid-sentence. fer-audio never uses it.
* ``message`` is never interrupted (only postponed by ``important``) and never
  dropped; it waits for other ``message`` speech and cancels ``text`` and
  ``notification``. That is "always delivered" without cutting anyone off.
* ``text`` waits while any ``message`` is queued or speaking, and is cancelled
  by a new ``message`` or a newer ``text``.
* ``notification`` is dropped whenever anything else is queued or speaking.

So **expression words are sent at ``text``** (:data:`CUE_PRIORITY`): they wait
for the screen reader to finish, and if the screen reader speaks again
before they start, its speech wins and the word is cancelled. ``notification``
would also never interrupt, but it is thrown away whenever the screen reader
is talking, and ``message`` would make the screen reader's next answer wait
behind an expression word. **Fault warnings (camera lost, ...) are sent at
``message``** (:data:`WARNING_PRIORITY`): always delivered, after the screen
reader's current sentence, never cutting it.

fer-audio keeps at most one utterance at the server and the rest in its own
queue, so it can drop exactly the cue that stopped being true
(:meth:`DispatcherSpeaker.withdraw`; SSIP can only cancel a whole connection's
messages), and so a word that has waited longer than ``speech.max_wait_s``
is dropped as old news rather than spoken late.

Voice, rate and output module are the user's own (their speechd.conf, their
per-client section for ``*:fer-audio:*``); they are set only when the
config names them. A lost server is reported once through ``on_lost`` and
retried with backoff; ``on_back`` says when it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fer_audio.config import SpeechConfig
from fer_audio.ssip import SsipClient, SsipError, SsipEvent, client_name, socket_path

log = logging.getLogger(__name__)

CUE_PRIORITY = "text"
WARNING_PRIORITY = "message"
# An utterance at the server that has neither ended nor been cancelled after this long
# (a hung output module) is given up, so the queue behind it moves again.
INFLIGHT_TIMEOUT_S = 30.0


@dataclass
class Utterance:
    """One text waiting for, or at, the server."""

    text: str
    priority: str
    tag: tuple[int, str] | None  # (track, cue key) for expression words; None for messages
    not_before: float
    queued_at: float
    max_wait_s: float | None
    msg_id: int | None = None
    sent_at: float = 0.0
    begun: bool = False
    cancelling: bool = False


@dataclass(frozen=True)
class SpeakerStats:
    sent: int = 0
    spoken: int = 0
    cancelled_by_server: int = 0
    withdrawn: int = 0
    expired: int = 0


class DispatcherSpeaker:
    """Speaks through speech-dispatcher from a worker thread; :meth:`speak` never blocks on the server."""

    def __init__(self, cfg: SpeechConfig, *, path: Path | None = None, name: str | None = None,
                 on_lost: Callable[[str], None] | None = None, on_back: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self.cfg = cfg
        self.path = path if path is not None else socket_path()
        self.name = name or client_name()
        self._on_lost = on_lost
        self._on_back = on_back
        self._clock = clock
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._retry_wait = retry_initial_s
        self._next_retry = 0.0
        self._cond = threading.Condition()
        self._queue: deque[Utterance] = deque()
        self._inflight: Utterance | None = None
        self._early: dict[int, str] = {}  # events that arrived before SPEAK's reply was read
        self._client: SsipClient | None = None
        self._priority: str | None = None
        self._up = False
        self._lost_reason: str | None = None
        self._report_lost = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.problem: str | None = "not started"
        self._sent = self._spoken = self._server_cancelled = self._withdrawn = self._expired = 0
        self._warned: set[str] = set()

    # -- life cycle

    def start(self) -> bool:
        """First connection attempt (synchronous) and the worker thread; True when the server answered."""
        ok = self._connect()
        self._thread = threading.Thread(target=self._work, name="fer-audio speech-dispatcher", daemon=True)
        self._thread.start()
        return ok

    @property
    def up(self) -> bool:
        return self._up and not self._closed

    @property
    def stats(self) -> SpeakerStats:
        return SpeakerStats(self._sent, self._spoken, self._server_cancelled, self._withdrawn, self._expired)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    # -- what the player calls

    def speak(self, text: str, *, priority: str = CUE_PRIORITY, tag: tuple[int, str] | None = None,
              delay_s: float = 0.0) -> bool:
        """Queue ``text``; False (nothing queued) while the server is not there, so the caller falls back."""
        text = " ".join(text.split())
        if not text:
            return False
        with self._cond:
            if not self.up:
                return False
            now = self._clock()
            max_wait = self.cfg.max_wait_s if priority == CUE_PRIORITY else None
            self._queue.append(Utterance(text, priority, tag, now + max(0.0, delay_s), now, max_wait))
            self._cond.notify_all()
        return True

    def withdraw(self, track: int | None, key: str | None = None) -> int:
        """Cues of ``track`` (None: everyone's) of ``key`` (None: any) no longer hold: drop those not yet begun.

        A word already being spoken is left to finish; cutting a word in half helps nobody.
        Returns how many were dropped.
        """
        cancel = False
        dropped = 0
        with self._cond:
            def matches(u: Utterance) -> bool:
                return (u.tag is not None and (track is None or u.tag[0] == track)
                        and (key is None or u.tag[1] == key))

            keep = deque(u for u in self._queue if not matches(u))
            dropped = len(self._queue) - len(keep)
            self._queue = keep
            u = self._inflight
            if u is not None and matches(u) and not u.begun and not u.cancelling:
                u.cancelling = True
                # Not yet sent: the worker sees the flag and either skips it or cancels it itself.
                cancel = u.msg_id is not None
                dropped += 1
            self._withdrawn += dropped
            client = self._client
        if cancel and client is not None:
            try:
                client.cancel_self()  # only fer-audio's own connection: the screen reader is not touched
            except SsipError as exc:
                log.debug("cancelling a withdrawn cue: %s", exc)
        if dropped:
            log.debug("withdrew %d spoken cue(s) of %s that no longer hold", dropped,
                      "everyone" if track is None else f"person {track}")
        return dropped

    # -- connection

    def _connect(self) -> bool:
        client = SsipClient(self.path, name=self.name, on_event=self._event, on_lost=self._lost)
        try:
            client.connect()
            self._apply_settings(client)
        except SsipError as exc:
            client.close()
            with self._cond:
                self.problem = str(exc)
                self._retry_wait = self._retry_initial if not self._up and self._next_retry == 0.0 \
                    else min(self._retry_wait * 2.0, self._retry_max)
                self._next_retry = self._clock() + self._retry_wait
            return False
        with self._cond:
            self._client = client
            self._priority = None
            self._up = True
            self.problem = None
            self._retry_wait = self._retry_initial
            self._cond.notify_all()
        return True

    def _apply_settings(self, client: SsipClient) -> None:
        """Only what the config names; everything else stays the user's own."""
        cfg = self.cfg
        wanted: list[tuple[str, str]] = []
        if cfg.dispatcher_module.strip():
            wanted.append(("speech.dispatcher_module", f"SET SELF OUTPUT_MODULE {cfg.dispatcher_module.strip()}"))
        if cfg.dispatcher_voice.strip():
            wanted.append(("speech.dispatcher_voice", f"SET SELF SYNTHESIS_VOICE {cfg.dispatcher_voice.strip()}"))
        if cfg.dispatcher_rate is not None:
            wanted.append(("speech.dispatcher_rate", f"SET SELF RATE {int(cfg.dispatcher_rate)}"))
        for key, line in wanted:
            try:
                client.command(line)
            except SsipError as exc:
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("%s: %s; the user's own setting stays", key, exc)

    def _lost(self, reason: str) -> None:
        """Reader thread: the connection ended. The worker reports it (never this thread: see _work)."""
        with self._cond:
            if self._closed:
                return
            self._up = False
            self._lost_reason = reason
            self._report_lost = True
            self.problem = f"speech-dispatcher stopped ({reason})"
            self._queue.clear()  # old news by the time it is back
            self._inflight = None
            self._early.clear()
            self._retry_wait = self._retry_initial
            self._next_retry = self._clock() + self._retry_wait
            self._cond.notify_all()

    def _event(self, ev: SsipEvent) -> None:
        with self._cond:
            u = self._inflight
            if u is None or u.msg_id != ev.msg_id:
                if len(self._early) < 64:
                    self._early[ev.msg_id] = ev.kind
                return
            self._apply_event(u, ev.kind)

    def _apply_event(self, u: Utterance, kind: str) -> None:
        """Under the lock."""
        if kind == "begin":
            u.begun = True
        elif kind in ("end", "cancel"):
            if kind == "end":
                self._spoken += 1
            elif not u.cancelling:
                self._server_cancelled += 1
                log.debug("speech-dispatcher cancelled %r (other speech took precedence)", u.text)
            self._inflight = None
            self._cond.notify_all()

    # -- the worker thread

    def _work(self) -> None:
        """Sends one utterance at a time, expires old ones, reconnects.

        Callbacks into the player run here, never on the socket's reader thread:
        the player may be waiting, under its own lock, for a reply that thread reads.
        """
        while True:
            report_lost: str | None = None
            reconnect = cancel_expired = False
            send: Utterance | None = None
            with self._cond:
                if self._closed:
                    return
                now = self._clock()
                if self._report_lost:
                    self._report_lost = False
                    report_lost = self._lost_reason or "connection lost"
                elif not self._up:
                    if now >= self._next_retry:
                        reconnect = True
                    else:
                        self._cond.wait(min(0.5, self._next_retry - now))
                        continue
                else:
                    cancel_expired = self._expire(now)
                    u = self._inflight
                    if u is not None and not cancel_expired:
                        if now - u.sent_at > INFLIGHT_TIMEOUT_S:
                            log.debug("speech-dispatcher never finished %r; giving up on it", u.text)
                            self._inflight = None
                            continue
                        self._cond.wait(0.2)
                        continue
                    if cancel_expired:
                        pass
                    elif not self._queue:
                        self._cond.wait(0.5)
                        continue
                    elif now < self._queue[0].not_before:
                        self._cond.wait(self._queue[0].not_before - now)
                        continue
                    else:
                        send = self._queue.popleft()
                        send.sent_at = now
                        self._inflight = send
                        self._early.clear()
            if cancel_expired:
                self._cancel_quietly()
            elif report_lost is not None:
                client, self._client = self._client, None
                if client is not None:
                    client.close()
                if self._on_lost is not None:
                    self._on_lost(report_lost)
            elif reconnect:
                if self._connect():
                    log.debug("speech-dispatcher answers again at %s", self.path)
                    if self._on_back is not None:
                        self._on_back()
            elif send is not None:
                self._send(send)

    def _expire(self, now: float) -> bool:
        """Under the lock: words that waited too long behind other speech are dropped, not spoken late.

        True when the one at the server must be cancelled (by the caller, outside the lock).
        """
        fresh: deque[Utterance] = deque()
        for u in self._queue:
            if u.max_wait_s is not None and now - u.queued_at > u.max_wait_s:
                self._expired += 1
                log.debug("dropped spoken cue %r: waited %.1f s for other speech", u.text, now - u.queued_at)
            else:
                fresh.append(u)
        self._queue = fresh
        at = self._inflight
        if (at is not None and at.msg_id is not None and not at.begun and not at.cancelling
                and at.max_wait_s is not None and now - at.queued_at > at.max_wait_s):
            at.cancelling = True
            self._expired += 1
            log.debug("cancelled spoken cue %r: waited %.1f s for other speech", at.text, now - at.queued_at)
            return True
        return False

    def _cancel_quietly(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            client.cancel_self()
        except SsipError as exc:
            log.debug("cancelling a cue at speech-dispatcher: %s", exc)

    def _send(self, u: Utterance) -> None:
        client = self._client
        if client is None:
            with self._cond:
                self._inflight = None
            return
        with self._cond:
            if u.cancelling:  # withdrawn between leaving the queue and now
                self._inflight = None
                return
        try:
            if self._priority != u.priority:
                client.set_priority(u.priority)
                self._priority = u.priority
            msg_id = client.speak(u.text)
        except SsipError as exc:
            log.debug("speech-dispatcher refused %r: %s", u.text, exc)
            with self._cond:
                if self._inflight is u:
                    self._inflight = None
            return
        with self._cond:
            self._sent += 1
            if self._inflight is not u:
                return
            u.msg_id = msg_id
            for kind in ("begin", "end", "cancel"):
                if self._early.get(msg_id) == kind:
                    self._apply_event(u, kind)
            self._early.clear()
            late_cancel = u.cancelling and self._inflight is u
        if late_cancel:
            self._cancel_quietly()  # withdrawn while SPEAK was on its way: withdraw() could not cancel it
