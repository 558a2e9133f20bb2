"""Each connector reads engagement (R13) in one call per batch, in its platform's real
request shape, against captured payloads served by a fake on 127.0.0.1
(tests/social/fakes_engagement.py): the counts per post, unknown posts left out,
the batch limit, and the platform's rate-limit answer as a retryable
ConnectorError with its wait."""

from collections.abc import Iterator

import pytest
from django.test import override_settings

from social.connectors import get_connector
from social.connectors.base import ConnectorError, Engagement, engagement_from
from tests.social.fakes_engagement import engagement_api, rate_limited
from tests.social.fakes_mastodon import LOOPBACK_INSTANCE
from tests.social.fakeserver import FakeServer

ALICE_POST = "at://did:plc:alicecustomerz7q2k4m5n6o/app.bsky.feed.post/3lbagpost001"
BOB_POST = "at://did:plc:bobcustomer2345abcdefghi/app.bsky.feed.post/3lbobpost0002"
GONE_POST = "at://did:plc:alicecustomerz7q2k4m5n6o/app.bsky.feed.post/3lgone"

# platform: (ids asked, one of them unknown; the counts expected for the others)
CASES: dict[str, tuple[list[str], dict[str, Engagement]]] = {
    "x": (
        ["1795000000000000001", "1795000000000000009", "1795000000000000002"],
        {
            "1795000000000000001": Engagement(
                reposts=42, likes=310, replies=7, quotes=5
            ),
            "1795000000000000002": Engagement(reposts=0, likes=3, replies=1, quotes=0),
        },
    ),
    "reddit": (
        ["t3_1h2k3l4", "t1_m1n2o3p", "t3_gone"],
        {
            # A post: score as likes, comments, crossposts as reposts.
            "t3_1h2k3l4": Engagement(reposts=6, likes=1874, replies=412),
            # A comment scored below zero counts no likes.
            "t1_m1n2o3p": Engagement(),
        },
    ),
    "mastodon": (
        ["113500000000000001", "113500000000000002", "113500000000000404"],
        {
            "113500000000000001": Engagement(
                reposts=88, likes=240, replies=12, quotes=4
            ),
            # An older instance sends no quotes_count.
            "113500000000000002": Engagement(reposts=1, likes=2),
        },
    ),
    "bluesky": (
        [ALICE_POST, GONE_POST, BOB_POST],
        {
            ALICE_POST: Engagement(reposts=57, likes=301, replies=9, quotes=6),
            BOB_POST: Engagement(likes=1),
        },
    ),
    "facebook": (
        ["222000222_333000333", "222000222_999000999", "222000222_444000444"],
        {
            "222000222_333000333": Engagement(likes=128, replies=31),
            "222000222_444000444": Engagement(likes=2),
        },
    ),
    "instagram": (
        ["18100000000000001", "18100000000000404", "18100000000000002"],
        {
            "18100000000000001": Engagement(likes=77),
            "18100000000000002": Engagement(),
        },
    ),
}


@pytest.fixture(autouse=True)
def _loopback_instances() -> Iterator[None]:
    with override_settings(**LOOPBACK_INSTANCE):
        yield


@pytest.mark.parametrize("platform", sorted(CASES))
def test_reads_the_counts_of_a_batch_and_leaves_out_unknown_posts(
    fake_http: FakeServer, platform: str
) -> None:
    api = engagement_api(platform, fake_http)
    ids, expected = CASES[platform]

    found = get_connector(platform).read_engagement(api.account(), ids)

    assert found == expected
    if platform in {"facebook", "instagram"}:
        # Graph refuses a batch with an unknown id: halves, then the lone one.
        assert api.calls == [ids, ids[:1], ids[1:], ids[1:2], ids[2:]]
    else:
        assert api.calls == [ids]


def test_request_shapes_are_the_platforms(fake_http: FakeServer) -> None:
    apis = {p: engagement_api(p, fake_http) for p in ("x", "reddit", "mastodon")}
    get_connector("x").read_engagement(apis["x"].account(), ["1795000000000000001"])
    get_connector("reddit").read_engagement(apis["reddit"].account(), ["t3_1h2k3l4"])
    get_connector("mastodon").read_engagement(
        apis["mastodon"].account(), ["113500000000000001", "113500000000000002"]
    )

    x, reddit, mastodon = fake_http.requests
    assert (x.path, x.query) == (
        "/2/tweets",
        {"ids": ["1795000000000000001"], "tweet.fields": ["public_metrics"]},
    )
    assert (reddit.path, reddit.query) == (
        "/api/info",
        {"raw_json": ["1"], "id": ["t3_1h2k3l4"]},
    )
    assert (mastodon.path, mastodon.query) == (
        "/api/v1/statuses",
        {"id[]": ["113500000000000001", "113500000000000002"]},
    )


@pytest.mark.parametrize(
    ("platform", "batch"),
    [
        ("x", 100),
        ("reddit", 100),
        ("mastodon", 20),
        ("bluesky", 25),
        ("facebook", 50),
        ("instagram", 50),
        ("sandbox", 100),
    ],
)
def test_each_platform_has_its_batch_size_and_a_read_budget_under_its_limit(
    platform: str, batch: int
) -> None:
    connector = get_connector(platform)
    limit = connector.engagement_limit

    assert connector.engagement_batch == batch
    assert limit is not None
    assert limit.bucket == "engagement"
    # Never more than a third of a platform's published request rate.
    published = {
        "x": 900 / 900,
        "reddit": 100 / 60,
        "mastodon": 300 / 300,
        "bluesky": 3000 / 300,
        "facebook": 4800 / 86400 * 50,
        "instagram": 4800 / 86400 * 50,
        "sandbox": 600 / 60,
    }[platform]
    assert limit.requests / limit.per_seconds <= published / 3


def test_a_full_batch_is_one_call_and_one_more_id_is_refused_as_the_platform_does(
    fake_http: FakeServer,
) -> None:
    api = engagement_api("bluesky", fake_http)
    connector = get_connector("bluesky")
    uris = [ALICE_POST] + [f"{GONE_POST}{n}" for n in range(24)]

    assert connector.read_engagement(api.account(), uris) == {
        ALICE_POST: Engagement(reposts=57, likes=301, replies=9, quotes=6)
    }
    with pytest.raises(ConnectorError) as refused:
        connector.read_engagement(api.account(), [*uris, BOB_POST])

    assert (refused.value.status, refused.value.permanent) == (400, True)
    assert [len(call) for call in api.calls] == [25, 26]


@pytest.mark.parametrize(
    ("platform", "wait"),
    [
        ("x", 120.0),
        ("reddit", 95.0),
        ("mastodon", None),  # until the ISO reset: far ahead, checked below
        ("bluesky", None),
        ("facebook", 420.0),
        ("instagram", 420.0),
    ],
)
def test_a_rate_limit_is_a_retryable_error_with_the_platforms_wait(
    fake_http: FakeServer, platform: str, wait: float | None
) -> None:
    api = engagement_api(platform, fake_http)
    api.fail_next(rate_limited(platform))
    ids = CASES[platform][0][:1]

    with pytest.raises(ConnectorError) as limited:
        get_connector(platform).read_engagement(api.account(), ids)

    error = limited.value
    assert error.permanent is False
    assert error.retry_after is not None
    if wait is None:
        assert error.retry_after > 3600  # the reset header's time, years ahead
    else:
        assert error.retry_after == wait
    assert api.calls == [ids]


def test_a_wrong_token_is_an_auth_error_and_reads_nothing(
    fake_http: FakeServer,
) -> None:
    api = engagement_api("x", fake_http)
    with pytest.raises(ConnectorError) as refused:
        get_connector("x").read_engagement(
            api.account(access_token="stale"), ["1795000000000000001"]
        )
    assert (refused.value.status, refused.value.auth) == (401, True)
    assert api.calls == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([1, 2], "engagement entry is not an object"),
        ({"likes": "many"}, "likes is not a count"),
        ({"likes": 1.5}, "likes is not a count"),
        ({"likes": True}, "likes is not a count"),
    ],
)
def test_malformed_counts_are_value_errors(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engagement_from(entry, likes="likes")


def test_counts_as_text_are_read_and_absent_ones_are_zero() -> None:
    assert engagement_from(
        {"likes": "12", "reposts": None}, likes="likes", reposts="reposts", quotes="q"
    ) == Engagement(likes=12)
    assert Engagement(reposts=2, likes=3, replies=4, quotes=5).total == 14


def test_ids_the_platform_would_refuse_are_left_out_before_the_call(
    fake_http: FakeServer,
) -> None:
    api = engagement_api("x", fake_http)
    connector = get_connector("x")

    found = connector.read_engagement(
        api.account(), ["demo-x-1", "1795000000000000001", "1" * 20]
    )

    assert list(found) == ["1795000000000000001"]
    assert api.calls == [["1795000000000000001"]]
    assert connector.read_engagement(api.account(), ["demo-x-2"]) == {}
    assert len(api.calls) == 1
