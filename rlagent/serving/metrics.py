"""Service metrics in the Prometheus text exposition format (``GET /metrics``).

Counters, a gauge and histograms with fixed buckets, written without a client library; the
server updates them from one event loop and one batch thread, under a lock.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

__all__ = ["ServiceMetrics"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        out = []
        running = 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.sum:.6f}")
        out.append(f"{name}_count{suffix} {self.total}")
        return out


class ServiceMetrics:
    """Requests, latency, batch sizes and open sessions of one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, _Histogram] = {}
        self._batch_size = _Histogram(BATCH_BUCKETS)
        self._batch_seconds = _Histogram(LATENCY_BUCKETS)
        self._decisions = 0
        self.sessions = 0

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request and its latency."""
        with self._lock:
            self._requests[(method, route, int(status))] += 1
            hist = self._latency.get(route)
            if hist is None:
                hist = self._latency[route] = _Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        """Record one forward pass over ``size`` decisions."""
        with self._lock:
            self._batch_size.observe(size)
            self._batch_seconds.observe(seconds)
            self._decisions += size

    @property
    def mean_batch_size(self) -> float:
        """Decisions per forward pass so far (0 before the first)."""
        with self._lock:
            n = self._batch_size.total
            return self._decisions / n if n else 0.0

    def render(self) -> str:
        """The metrics as Prometheus text."""
        with self._lock:
            lines = [
                "# HELP rlagent_requests_total HTTP requests served, by method, route and status.",
                "# TYPE rlagent_requests_total counter",
            ]
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(
                    f'rlagent_requests_total{{method="{method}",route="{route}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP rlagent_request_seconds Request latency in seconds, by route.",
                "# TYPE rlagent_request_seconds histogram",
            ]
            for route, hist in sorted(self._latency.items()):
                lines += hist.lines("rlagent_request_seconds", f'route="{route}"')
            lines += [
                "# HELP rlagent_batch_size Decisions per forward pass.",
                "# TYPE rlagent_batch_size histogram",
                *self._batch_size.lines("rlagent_batch_size"),
                "# HELP rlagent_batch_seconds Seconds per forward pass (and its log write).",
                "# TYPE rlagent_batch_seconds histogram",
                *self._batch_seconds.lines("rlagent_batch_seconds"),
                "# HELP rlagent_decisions_total Decisions taken.",
                "# TYPE rlagent_decisions_total counter",
                f"rlagent_decisions_total {self._decisions}",
                "# HELP rlagent_sessions Open sessions.",
                "# TYPE rlagent_sessions gauge",
                f"rlagent_sessions {self.sessions}",
            ]
        return "\n".join(lines) + "\n"
