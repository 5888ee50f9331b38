"""A recording observer, and the secrets no observation may hold."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from wxmiddleware.observe import Observer


class Recorded:
    """One activity: its kind, its labels, and how it ended."""

    def __init__(self, kind: str, labels: Tuple[Any, ...]) -> None:
        self.kind = kind
        self.labels = labels
        self.error: Optional[BaseException] = None
        self.attributes: Dict[str, Any] = {}
        self.ended = 0

    def end(
        self, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> None:
        self.ended += 1
        self.error = error
        self.attributes = dict(attributes or {})


class RecordingObserver(Observer):
    """Keeps every call, in order, as ``(method, args)``."""

    def __init__(self) -> None:
        self.events: List[Tuple[str, Tuple[Any, ...]]] = []
        self.activities: List[Recorded] = []

    def request(self, outcome: str) -> None:
        self.events.append(("request", (outcome,)))

    def rejected(self, reason: str, status: int) -> None:
        self.events.append(("rejected", (reason, status)))

    def login(self, outcome: str, errcode: Optional[int]) -> None:
        self.events.append(("login", (outcome, errcode)))

    def logout(self, ended: bool) -> None:
        self.events.append(("logout", (ended,)))

    def _start(self, kind: str, *labels: Any) -> Recorded:
        recorded = Recorded(kind, labels)
        self.activities.append(recorded)
        return recorded

    def login_started(self) -> Recorded:
        return self._start("login")

    def store_call(self, store: str, op: str) -> Recorded:
        return self._start("store", store, op)

    def http_call(self, api: str, method: str) -> Recorded:
        return self._start("http", api, method)

    def of(self, method: str) -> List[Tuple[Any, ...]]:
        return [args for name, args in self.events if name == method]

    def everything(self) -> str:
        """Every value any call received, as one string to search for secrets."""
        parts = [repr(self.events)]
        for activity in self.activities:
            parts += [repr(activity.labels), repr(activity.attributes), repr(activity.error)]
        return " ".join(parts)
