"""The fault suite's clients, threads in the test process, bounded in count and time.

- `Sender` plays a platform posting signed webhooks, or an integration pushing to
  the API channel: requests are released at a pace (or after the request they
  follow was accepted), and a refused one (non-2xx, connection error) is sent again
  later with backoff, bounded in attempts and by a deadline. It counts every answer
  and keeps every refusal, to check its shape.
- `SandboxPoster` publishes customer posts on the Sandbox network (mentions of the
  brand, follow-ups in those threads without a mention, untagged noise); the
  network's own webhook sender delivers them to Earshot.

Each knows its ground truth: the external ids Earshot must end up recording.
"""

import heapq
import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from django.db import connection

from social.sandbox import network
from social.sandbox.models import Person, Post


@dataclass(eq=False)
class Request:
    """One delivery a client wants accepted; `key` is the external id it carries."""

    key: str
    path: str
    body: bytes
    headers: dict[str, str]
    thread: str = ""
    follows: "Request | None" = None
    gap: float = 0.0
    accepted: bool = False
    attempts: int = 0


@dataclass(frozen=True)
class Refusal:
    source: str
    status: int
    retry_after: str | None
    code: str | None
    body: str


class Sender:
    """Send `requests` to `base_url` with `threads` clients until each is accepted.

    Requests without `follows` are released `1/rate` seconds apart; one that follows
    another is released `gap` seconds after that one was accepted. `accept` are the
    statuses that mean done; a status in `give_up` ends that request (an
    integration does not retry a 400); anything else is retried after a backoff
    (honouring Retry-After up to `max_backoff`).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        requests: list[Request],
        *,
        rate: float,
        accept: Iterable[int],
        give_up: Iterable[int] = (),
        threads: int = 6,
        max_attempts: int = 14,
        max_backoff: float = 8.0,
        deadline: float = 240.0,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.requests = requests
        self.rate = rate
        self.accept = set(accept)
        self.give_up = set(give_up)
        self.threads = threads
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.deadline = deadline
        self.codes: Counter[str] = Counter()
        self.refusals: list[Refusal] = []
        self._heap: list[tuple[float, int, Request]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._open = len(requests)
        self._followers: dict[int, list[Request]] = {}
        self._workers: list[threading.Thread] = []
        self.started = 0.0
        self.finished = 0.0

    # -- running ---------------------------------------------------------------

    def start(self) -> "Sender":
        self.started = time.monotonic()
        self._end = self.started + self.deadline
        released = 0
        with self._cond:
            for request in self.requests:
                if request.follows is None:
                    self._push(self.started + released / self.rate, request)
                    released += 1
                else:
                    follows = id(request.follows)
                    self._followers.setdefault(follows, []).append(request)
        for index in range(self.threads):
            thread = threading.Thread(
                target=self._run, name=f"{self.name}-{index}", daemon=True
            )
            thread.start()
            self._workers.append(thread)
        return self

    def join(self) -> None:
        for thread in self._workers:
            thread.join(timeout=max(1.0, self._end - time.monotonic() + 30))
        self.finished = time.monotonic()

    @property
    def accepted(self) -> int:
        return sum(request.accepted for request in self.requests)

    def _push(self, due: float, request: Request) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), request))
        self._cond.notify()

    def _close(self, request: Request, *, accepted: bool) -> None:
        """Called under the lock: the request is finished, release its followers."""
        request.accepted = accepted
        self._open -= 1
        for follower in self._followers.pop(id(request), []):
            if accepted:
                self._push(time.monotonic() + follower.gap, follower)
            else:
                self._close(follower, accepted=False)
        self._cond.notify_all()

    def _next(self) -> Request | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._open <= 0 or now > self._end:
                    self._cond.notify_all()
                    return None
                wait = 0.5
                if self._heap:
                    due = self._heap[0][0]
                    if due <= now:
                        return heapq.heappop(self._heap)[2]
                    wait = min(wait, due - now)
                self._cond.wait(wait)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=15.0) as client:
            while (request := self._next()) is not None:
                self._send(client, request)

    def _send(self, client: httpx.Client, request: Request) -> None:
        request.attempts += 1
        retry_after: float | None = None
        try:
            response = client.post(
                request.path, content=request.body, headers=request.headers
            )
            status: int | None = response.status_code
        except httpx.TransportError as exc:
            response, status = None, None
            label = f"conn:{type(exc).__name__}"
        else:
            label = str(status)
        with self._cond:
            self.codes[label] += 1
            if response is not None and status is not None and status >= 300:
                self.refusals.append(_refusal(self.name, response))
                retry_after = _seconds(response.headers.get("Retry-After"))
            if status in self.accept:
                self._close(request, accepted=True)
            elif status in self.give_up or request.attempts >= self.max_attempts:
                self._close(request, accepted=False)
            else:
                backoff = min(0.5 * 2 ** (request.attempts - 1), self.max_backoff)
                if retry_after is not None:
                    backoff = max(backoff, min(retry_after, self.max_backoff))
                self._push(time.monotonic() + backoff, request)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _refusal(source: str, response: httpx.Response) -> Refusal:
    code = None
    try:
        data = response.json()
        if isinstance(data, dict):
            code = str(data.get("code")) if "code" in data else None
    except ValueError:
        pass
    return Refusal(
        source=source,
        status=response.status_code,
        retry_after=response.headers.get("Retry-After"),
        code=code,
        body=response.text[:200],
    )


# -- webhooks in the Sandbox's format ----------------------------------------------


@dataclass
class SandboxIdentity:
    """The connected brand account the deliveries are addressed to."""

    account_id: str
    handle: str
    secret: str


@dataclass
class WebhookPlan:
    """Deliveries of Sandbox posts straight to /hooks/sandbox/; every one expected."""

    requests: list[Request] = field(default_factory=list)
    event_ids: dict[str, str] = field(default_factory=dict)  # external id → event

    @property
    def expected(self) -> set[str]:
        return {request.key for request in self.requests}

    @property
    def threads(self) -> set[str]:
        return {request.thread for request in self.requests}


def webhook_request(
    brand: SandboxIdentity,
    *,
    event_id: str,
    post_id: str,
    author: int,
    text: str,
    root: str,
    in_reply_to: str | None,
    mentions: bool,
) -> Request:
    """One signed `post.created` delivery, signed as the Sandbox signs it."""
    payload: dict[str, Any] = {
        "event_id": event_id,
        "type": "post.created",
        "for_account": {
            "id": brand.account_id,
            "handle": brand.handle,
            "name": "Acme Air",
            "followers": 25_000,
        },
        "mentions_account": mentions,
        "post": {
            "id": post_id,
            "text": text,
            "author": {
                "id": f"fault-customer-{author}",
                "handle": f"fault_customer_{author}",
                "name": f"Customer {author}",
                "followers": author % 500,
            },
            "in_reply_to": in_reply_to,
            "root": root,
            "mentions": [brand.handle] if mentions else [],
            "language": "en",
            "created_at": datetime.now(UTC).isoformat(),
            "url": "",
        },
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        network.SIGNATURE_HEADER: network.sign(body, brand.secret),
    }
    return Request(
        key=post_id, path="/hooks/sandbox/", body=body, headers=headers, thread=root
    )


def webhook_threads(
    brand: SandboxIdentity,
    run: str,
    *,
    threads: int,
    follow_ups: int,
    reverse: bool = False,
    seed: int = 1,
) -> WebhookPlan:
    """`threads` roots that mention the brand, `follow_ups` replies spread over them
    (no mention, each replying to the thread's last post).

    In order (default) a follow-up is sent 0.3 to 3 s after the post it replies to was
    accepted. With `reverse`, each thread is delivered newest first: the root only
    after its last follow-up was accepted (0.3 s apart, so the follow-ups are
    processed before their parent exists)."""
    rng = random.Random(seed)
    plan = WebhookPlan()
    chains: list[list[Request]] = []
    events = itertools.count(1)
    for index in range(threads):
        root = f"{run}-t{index}"
        request = webhook_request(
            brand,
            event_id=f"{run}-e{next(events)}",
            post_id=root,
            author=index,
            text=f"@{brand.handle} flight AA{index % 90 + 10} delayed, thread {index}",
            root=root,
            in_reply_to=None,
            mentions=True,
        )
        chains.append([request])
    for number in range(follow_ups):
        chain = chains[number % threads] if reverse else rng.choice(chains)
        parent = chain[-1]
        thread_index = chains.index(chain)
        post_id = f"{chain[0].key}-f{len(chain)}"
        chain.append(
            webhook_request(
                brand,
                event_id=f"{run}-e{next(events)}",
                post_id=post_id,
                author=thread_index,
                text=f"Still waiting for an answer ({number})",
                root=chain[0].key,
                in_reply_to=parent.key,
                mentions=False,
            )
        )
    for chain in chains:
        ordered = list(reversed(chain)) if reverse else chain
        for previous, request in itertools.pairwise(ordered):
            request.follows = previous
            request.gap = 0.3 if reverse else rng.uniform(0.3, 3.0)
        plan.requests.extend(chain)
    for request in plan.requests:
        plan.event_ids[request.key] = json.loads(request.body)["event_id"]
    return plan


# -- API channel pushes ----------------------------------------------------------


def api_pushes(
    slug: str, channel_id: int, token: str, run: str, *, count: int
) -> list[Request]:
    """`count` public messages pushed to the API channel, two per thread."""
    path = f"/api/v1/t/{slug}/channels/{channel_id}/messages/"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    requests = []
    for index in range(count):
        thread = f"{run}-api-thread-{index // 2}"
        key = f"{run}-api-{index}"
        body = {
            "external_id": key,
            "text": f"Pushed message {index} from the custom source",
            "author": {"id": f"api-author-{index // 2}", "handle": f"src{index // 2}"},
            "visibility": "public",
            "thread_id": thread,
        }
        requests.append(
            Request(
                key=key,
                path=path,
                body=json.dumps(body).encode(),
                headers=headers,
                thread=thread,
            )
        )
    return requests


# -- live Sandbox traffic --------------------------------------------------------


class SandboxPoster:
    """Customers posting on the Sandbox for `duration` seconds (at most `limit`
    posts): tagged roots, follow-ups in those threads without a tag, and untagged
    roots no listening rule matches (not expected). `paused` holds it (the
    platform is not down when Earshot's database is)."""

    def __init__(
        self,
        brand_handle: str,
        *,
        rate: float,
        duration: float,
        limit: int,
        seed: int = 7,
    ) -> None:
        self.brand_handle = brand_handle
        self.rate = rate
        self.duration = duration
        self.limit = limit
        self.rng = random.Random(seed)
        self.paused = threading.Event()
        self.expected: set[str] = set()
        self.threads: set[str] = set()
        self.posts = 0
        self.errors: Counter[str] = Counter()
        self._thread = threading.Thread(
            target=self._run, name="sandbox-poster", daemon=True
        )

    def start(self) -> "SandboxPoster":
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=self.duration + 60)

    def _run(self) -> None:
        try:
            customers = [
                Person.objects.get_or_create(
                    handle=f"fault_cust_{n}",
                    defaults={"name": f"Customer {n}", "followers": 10 * n},
                )[0]
                for n in range(12)
            ]
            open_threads: dict[int, list[Post]] = {}
            deadline = time.monotonic() + self.duration
            while time.monotonic() < deadline and self.posts < self.limit:
                if self.paused.is_set():
                    connection.close()
                    time.sleep(0.2)
                    continue
                try:
                    self._one(customers, open_threads)
                except Exception as exc:  # the platform retries later
                    self.errors[type(exc).__name__] += 1
                    connection.close()
                time.sleep(self.rng.expovariate(self.rate))
        finally:
            connection.close()

    def _one(
        self, customers: list[Person], open_threads: dict[int, list[Post]]
    ) -> None:
        roll = self.rng.random()
        if open_threads and roll < 0.35:
            thread = open_threads[self.rng.choice(list(open_threads))]
            post, _ = network.create_post(
                thread[0].author,
                self.rng.choice(
                    ["Hello?? Anyone there?", "Still waiting.", "Any news?"]
                ),
                in_reply_to=thread[-1],
            )
            thread.append(post)
            self.expected.add(str(post.pk))
        elif roll < 0.45:
            network.create_post(
                self.rng.choice(customers),
                f"Queueing at the airport again, number {self.posts}",
            )
        else:
            post, _ = network.create_post(
                self.rng.choice(customers),
                f"@{self.brand_handle} where is my bag? ref {self.posts}",
            )
            open_threads[post.pk] = [post]
            self.expected.add(str(post.pk))
            self.threads.add(str(post.pk))
        self.posts += 1
