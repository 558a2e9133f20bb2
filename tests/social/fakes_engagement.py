"""The platforms' engagement reads on the shared FakeServer (tests/social/fakeserver).

`engagement_api(platform, server)` answers what each connector's
`read_engagement` calls, the way the platform does, from the captured payloads in
tests/social/fixtures/<platform>/:
- X `GET /2/tweets?ids=&tweet.fields=public_metrics` (100 ids at most; unknown ids
  under `errors`; metrics only when asked for);
- Reddit `GET /api/info?id=<fullnames>` (a Listing without the unknown ones, with
  `x-ratelimit-*` headers);
- Mastodon `GET /api/v1/statuses?id[]=` (20 at most, 422 beyond);
- Bluesky `GET /xrpc/app.bsky.feed.getPosts?uris=` (25 at most, 400 beyond);
- Graph `GET /v21.0/?ids=&fields=` (50 at most; one unknown id fails the whole
  request with code 100, as Graph does).
Each checks the bearer token. `fail_next(reply)` answers the next call with a
platform's refusal; `rate_limited(platform)` builds its 429 (Graph: code 4).
"""

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from social.connectors.base import AccountRef
from tests.social.fakeserver import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "engagement-token"
GRAPH = "/v21.0/"


def fixture(platform: str, name: str) -> Any:
    return json.loads((FIXTURES / platform / name).read_text())


@dataclass
class EngagementApi:
    """One platform's engagement endpoint on the fake server."""

    platform: str
    path: str
    auth: str
    max_ids: int
    ids_of: Callable[[FakeRequest], list[str]]
    answer: Callable[["EngagementApi", FakeRequest, list[str]], Reply]
    too_many: Reply
    data: Any = None
    failures: list[Reply] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)

    def install(self, server: FakeServer) -> "EngagementApi":
        self.base_url = server.base_url
        server.route("GET", self.path, self.handle)
        return self

    def account(self, **credentials: str) -> AccountRef:
        return AccountRef(
            platform=self.platform,
            external_id="brand",
            handle="acme",
            credentials={"access_token": TOKEN, **credentials},
            base_url=self.base_url,
        )

    def fail_next(self, reply: Reply) -> None:
        self.failures.append(reply)

    def handle(self, request: FakeRequest) -> Reply:
        if request.headers.get("authorization", "").lower() != self.auth.lower():
            return (401, {}, {"error": "unauthorized"})
        ids = self.ids_of(request)
        self.calls.append(ids)
        if self.failures:
            return self.failures.pop(0)
        if len(ids) > self.max_ids:
            return self.too_many
        return self.answer(self, request, ids)


def _query(request: FakeRequest, name: str) -> list[str]:
    return request.query.get(name, [])


def _comma(request: FakeRequest, name: str) -> list[str]:
    return [part for value in _query(request, name) for part in value.split(",")]


def _x(api: EngagementApi, request: FakeRequest, ids: list[str]) -> Reply:
    posts = {post["id"]: post for post in api.data["data"]}
    fields = _comma(request, "tweet.fields")
    data = []
    for post_id in ids:
        if post_id in posts:
            post = copy.deepcopy(posts[post_id])
            if "public_metrics" not in fields:
                post.pop("public_metrics")
            data.append(post)
    missing = [
        {
            "value": post_id,
            "detail": f"Could not find tweet with ids: [{post_id}].",
            "title": "Not Found Error",
            "resource_type": "tweet",
            "parameter": "ids",
            "resource_id": post_id,
            "type": "https://api.twitter.com/2/problems/resource-not-found",
        }
        for post_id in ids
        if post_id not in posts
    ]
    body: dict[str, Any] = {"data": data} if data else {}
    if missing:
        body["errors"] = missing
    return (200, {"x-rate-limit-limit": "900", "x-rate-limit-remaining": "899"}, body)


def _reddit(api: EngagementApi, request: FakeRequest, ids: list[str]) -> Reply:
    listing = copy.deepcopy(api.data)
    children = listing["data"]["children"]
    listing["data"]["children"] = [c for c in children if c["data"]["name"] in ids]
    listing["data"]["dist"] = len(listing["data"]["children"])
    headers = {
        "x-ratelimit-used": str(len(api.calls)),
        "x-ratelimit-remaining": str(float(100 - len(api.calls))),
        "x-ratelimit-reset": "412",
    }
    return (200, headers, listing)


def _mastodon(api: EngagementApi, request: FakeRequest, ids: list[str]) -> Reply:
    statuses = [status for status in api.data if status["id"] in ids]
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "299",
        "X-RateLimit-Reset": "2026-01-02T03:10:00.000Z",
    }
    return (200, headers, statuses)


def _bluesky(api: EngagementApi, request: FakeRequest, ids: list[str]) -> Reply:
    return (200, {}, {"posts": [p for p in api.data["posts"] if p["uri"] in ids]})


def _graph(api: EngagementApi, request: FakeRequest, ids: list[str]) -> Reply:
    missing = [object_id for object_id in ids if object_id not in api.data]
    if missing:
        error = fixture("meta", "graph_ids_missing.json")
        error["error"]["message"] = (
            f"(#100) Some of the aliases you requested do not exist: {missing[0]}"
        )
        return (400, {}, error)
    fields = set(_comma(request, "fields")) | {"id"}
    return (
        200,
        {},
        {
            object_id: {k: v for k, v in api.data[object_id].items() if k in fields}
            for object_id in ids
        },
    )


def engagement_api(platform: str, server: FakeServer) -> EngagementApi:
    """The fake engagement endpoint of `platform`, installed on `server`."""
    bearer = f"Bearer {TOKEN}"
    apis = {
        "x": lambda: EngagementApi(
            "x",
            "/2/tweets",
            bearer,
            100,
            lambda r: _comma(r, "ids"),
            _x,
            (
                400,
                {"Content-Type": "application/problem+json"},
                {
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            ),
            fixture("x", "tweets_lookup_metrics.json"),
        ),
        "reddit": lambda: EngagementApi(
            "reddit",
            "/api/info",
            f"bearer {TOKEN}",
            100,
            lambda r: _comma(r, "id"),
            _reddit,
            (400, {}, {"message": "Bad Request", "error": 400}),
            fixture("reddit", "info_metrics.json"),
        ),
        "mastodon": lambda: EngagementApi(
            "mastodon",
            "/api/v1/statuses",
            bearer,
            20,
            lambda r: _query(r, "id[]"),
            _mastodon,
            (422, {}, {"error": "Validation failed: too many ids"}),
            fixture("mastodon", "statuses_by_id.json"),
        ),
        "bluesky": lambda: EngagementApi(
            "bluesky",
            "/xrpc/app.bsky.feed.getPosts",
            bearer,
            25,
            lambda r: _query(r, "uris"),
            _bluesky,
            (
                400,
                {},
                {
                    "error": "InvalidRequest",
                    "message": "uris must not have more than 25 elements",
                },
            ),
            fixture("bluesky", "get_posts_metrics.json"),
        ),
        "facebook": lambda: EngagementApi(
            "facebook",
            GRAPH,
            bearer,
            50,
            lambda r: _comma(r, "ids"),
            _graph,
            (400, {}, {"error": {"message": "(#100) Too many IDs", "code": 100}}),
            fixture("meta", "fb_comments_by_ids.json"),
        ),
        "instagram": lambda: EngagementApi(
            "instagram",
            GRAPH,
            bearer,
            50,
            lambda r: _comma(r, "ids"),
            _graph,
            (400, {}, {"error": {"message": "(#100) Too many IDs", "code": 100}}),
            fixture("meta", "ig_comments_by_ids.json"),
        ),
    }
    return apis[platform]().install(server)


def rate_limited(platform: str) -> Reply:
    """The platform's answer when the account's window is spent."""
    if platform == "x":
        return (
            429,
            {
                "Content-Type": "application/problem+json",
                "x-rate-limit-limit": "900",
                "x-rate-limit-remaining": "0",
                "Retry-After": "120",
            },
            {
                "title": "Too Many Requests",
                "detail": "Too Many Requests",
                "status": 429,
            },
        )
    if platform == "reddit":
        return (
            429,
            {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": "95",
                "Retry-After": "95",
            },
            {"message": "Too Many Requests", "error": 429},
        )
    if platform == "mastodon":
        return (
            429,
            {
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "2099-01-02T03:10:00.000Z",
            },
            {"error": "Too many requests"},
        )
    if platform == "bluesky":
        return (
            429,
            {
                "ratelimit-limit": "3000",
                "ratelimit-remaining": "0",
                "ratelimit-reset": "4070908800",
                "ratelimit-policy": "3000;w=300",
            },
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        )
    usage = {"111000111": [{"type": "pages", "estimated_time_to_regain_access": 7}]}
    return (
        400,
        {"X-Business-Use-Case-Usage": json.dumps(usage)},
        fixture("meta", "graph_rate_limited.json"),
    )
