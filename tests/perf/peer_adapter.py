"""bench.py adapters for Earshot in the side-by-side with django-helpdesk.

Importable with PYTHONPATH holding this folder and ../shared/peers (for the shared
`earshot_adapter`, whose own import puts bench.py's folder on sys.path):

  python bench.py --target django-helpdesk=http://127.0.0.1:8000,token=KEY \
    --target peer_adapter:EarshotPeer=http://127.0.0.1:8801,token=T,slug=S,channel=1 \
    --target peer_adapter:EarshotPing=http://127.0.0.1:8801,token=T,slug=S

EarshotPeer is the shared adapter, except for get_ticket: when the API answers
`GET conversations/<id>/?include=messages` with the thread inside the detail, that
single request is the "ticket with its whole thread"; otherwise the two requests
(detail, then messages) as before. The choice is made once, by a probe on the first
ticket (untimed: bench.py builds its warm-up requests first); opt include=yes|no
forces it.

EarshotPing drives the baseline endpoint `GET ping/` (authenticates the token in the
workspace, answers a constant) in every phase, so its create figure is the ceiling
of a token-authenticated request in the same server processes.
"""

import sys
import threading
from typing import Any

# earshot_adapter puts bench.py's folder on sys.path and re-exports its Request.
from earshot_adapter import Earshot, Request  # type: ignore[import-not-found]


def _has_thread(body: object) -> bool:
    return isinstance(body, dict) and isinstance(body.get("messages"), list)


class EarshotPeer(Earshot):  # type: ignore[misc]
    name = "earshot"

    def __init__(self, opts: dict[str, str]) -> None:
        super().__init__(opts)
        choice = opts.get("include", "auto")
        if choice not in {"auto", "yes", "no"}:
            raise SystemExit(f"earshot adapter: include={choice!r}, want auto|yes|no")
        self.single: bool | None = None if choice == "auto" else choice == "yes"
        self._probe_http: Any = None
        self._lock = threading.Lock()

    def auth_headers(self, http: Any) -> dict[str, str]:
        headers: dict[str, str] = super().auth_headers(http)
        http.headers.update(headers)
        self._probe_http = http
        return headers

    def _single_request(self, ticket_id: int) -> bool:
        with self._lock:
            if self.single is None:
                status, body, _ = self._probe_http.call(
                    Request("GET", self._with_thread(ticket_id))
                )
                self.single = status == 200 and _has_thread(body)
                shape = "one request" if self.single else "two requests"
                print(  # noqa: T201
                    f"earshot get_ticket: {shape} (probe: HTTP {status})",
                    file=sys.stderr,
                )
            return self.single

    def _with_thread(self, ticket_id: int) -> str:
        return f"{self.api}/conversations/{ticket_id}/?include=messages"

    def get_ticket(self, ticket_id: int) -> Any:
        if self._single_request(ticket_id):
            return Request("GET", self._with_thread(ticket_id))
        return super().get_ticket(ticket_id)

    def thread_len(self, ticket_json: Any) -> int:
        if isinstance(ticket_json, dict):
            messages = ticket_json["messages"]
            conversation = ticket_json["id"]
            assert all(
                m.get("conversation_id", conversation) == conversation for m in messages
            ), "detail/thread mismatch"
            return len(messages)
        return int(super().thread_len(ticket_json))


class EarshotPing(Earshot):  # type: ignore[misc]
    """Every phase is `GET ping/`; nothing is created, nothing to settle."""

    name = "earshot-ping"

    def _ping(self) -> Any:
        return Request("GET", f"{self.api}/ping/")

    def create_ticket(self, msg: dict[str, str]) -> Any:
        return self._ping()

    def ticket_id(self, created_json: object) -> None:
        return None

    def add_reply(self, ticket_id: object, reply: dict[str, object]) -> Any:
        return self._ping()

    def list_open_page1(self) -> Any:
        return self._ping()

    def page_items(self, list_json: object) -> int:
        return 0

    def get_ticket(self, ticket_id: object) -> Any:
        return self._ping()

    def thread_len(self, ticket_json: object) -> int:
        return 0
