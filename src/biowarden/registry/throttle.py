"""A bound on how fast unauthenticated requests can grow the ledger.

Every refused request is ledgered, but a flood of requests without (or with bad) credentials must not be
able to grow the ledger without bound. :class:`UnauthenticatedThrottle` counts them per client in fixed
windows: the first ``per_client`` of a client's refusals in a window (the registry counts a client's
refusals per bearer token it presents, and otherwise per client), and at most ``overall`` in all, are
ledgered one by one; the rest are only counted, and the counts are ledgered as ONE summary entry
(``auth.coalesced``: how many, from how many clients, the busiest ones) when the next window opens. So an
unauthenticated flood adds at most ``overall + 1`` entries per window, whatever its rate. The request is
refused (401) either way; a coalesced refusal has no ledger index of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["UnauthenticatedThrottle"]

TOP_CLIENTS = 20


class UnauthenticatedThrottle:
    def __init__(
        self,
        *,
        per_client: int = 20,
        overall: int = 300,
        window: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_client < 1 or overall < 1 or window <= 0 or max_clients < 1:
            raise ValueError("per_client, overall and max_clients must be at least 1 and window positive")
        self.per_client = per_client
        self.overall = overall
        self.window = float(window)
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._ledgered: dict[str, int] = {}
        self._total = 0
        self._suppressed: dict[str, int] = {}

    def admit(self, client: str | None) -> tuple[bool, dict[str, Any] | None]:
        """Whether to ledger this refusal on its own, and the summary of the window that just closed (to
        be ledgered now) if there is one."""
        key = (client or "unknown")[:96]
        with self._lock:
            summary = None
            now = self._clock()
            if now - self._start >= self.window:
                summary = self._summary()
                self._start, self._ledgered, self._total, self._suppressed = now, {}, 0, {}
            seen = self._ledgered.get(key, 0)
            if seen < self.per_client and self._total < self.overall and len(self._ledgered) < self.max_clients:
                self._ledgered[key] = seen + 1
                self._total += 1
                return True, summary
            if key in self._suppressed or len(self._suppressed) < self.max_clients:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
            else:
                self._suppressed["other"] = self._suppressed.get("other", 0) + 1
            return False, summary

    def _summary(self) -> dict[str, Any] | None:
        if not self._suppressed:
            return None
        busiest = sorted(self._suppressed.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CLIENTS]
        return {
            "window_seconds": self.window,
            "suppressed": sum(self._suppressed.values()),
            "distinct_clients": len(self._suppressed),
            "busiest": dict(busiest),
            "per_client": self.per_client,
            "overall": self.overall,
        }
