"""Goodwill gestures: pools, all-or-nothing imports, the one-click private reply,
undo giving the code back, the low-pool email, the report and the API."""

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from goodwill.exceptions import CodeImportInvalid, GoodwillPrivateOnly, PoolEmpty
from goodwill.models import GoodwillCode, GoodwillPool
from goodwill.selectors import available_codes, gesture_report, goodwill_pools
from goodwill.services import (
    create_goodwill_pool,
    import_goodwill_codes,
    send_goodwill_reply,
)
from helpdesk.models import Conversation, Message
from helpdesk.services.replies import cancel_scheduled_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login
from tests.helpdesk.conftest import item, member, receive

pytestmark = pytest.mark.django_db


def make_pool(
    tenant: Tenant, owner: User, codes: str = "", mark: int = 2
) -> GoodwillPool:
    with tenant_context(tenant):
        pool = create_goodwill_pool(
            member(tenant, owner),
            brand=Brand.objects.get(),
            name="10% off",
            description="Next flight",
            low_water_mark=mark,
        )
        if codes:
            import_goodwill_codes(member(tenant, owner), pool, text=codes)
    return pool


def private_conversation(account: SocialAccount) -> Conversation:
    return receive(account, item(visibility="private", followers=20_000)).conversation


def codes_of(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return list(GoodwillCode.objects.order_by("id").values_list("code", flat=True))


def test_an_import_takes_lines_or_csv(tenant: Tenant, owner: User) -> None:
    pool = make_pool(tenant, owner, "code,value\nAAA-111,10\n\nBBB_222,10\n")
    assert codes_of(tenant) == ["AAA-111", "BBB_222"]
    with tenant_context(tenant):
        assert import_goodwill_codes(member(tenant, owner), pool, text="CCC333") == 1


def test_a_bad_import_reports_every_line_and_imports_none(
    tenant: Tenant, owner: User
) -> None:
    pool = make_pool(tenant, owner, "AAA111")
    with tenant_context(tenant), pytest.raises(CodeImportInvalid) as refused:
        import_goodwill_codes(
            member(tenant, owner),
            pool,
            text="NEW001\nAAA111\nno way!\nNEW001\nx\nNEW002",
        )
    assert refused.value.details["lines"] == [
        {"line": 2, "text": "AAA111", "reason": "already in this pool"},
        {
            "line": 3,
            "text": "no way!",
            "reason": "not a code: use 3 to 64 letters, digits, dashes or "
            "underscores, starting with a letter or digit",
        },
        {"line": 4, "text": "NEW001", "reason": "duplicate of line 1"},
        {
            "line": 5,
            "text": "x",
            "reason": "not a code: use 3 to 64 letters, digits, dashes or "
            "underscores, starting with a letter or digit",
        },
    ]
    assert codes_of(tenant) == ["AAA111"]


def test_one_click_sends_a_private_reply_with_the_oldest_code(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    pool = make_pool(tenant, owner, "AAA111\nBBB222\nCCC333", mark=1)
    conversation = private_conversation(account)
    with tenant_context(tenant):
        outcome = send_goodwill_reply(
            conversation, membership=member(tenant, agent), pool=pool, text="So sorry."
        )
        message = Message.objects.get(pk=outcome.reply.message.pk)
        code = GoodwillCode.objects.get(code="AAA111")
    assert message.text == "So sorry.\n\n10% off: AAA111"
    assert message.visibility == "private"
    assert message.delivery_status == "scheduled"
    assert (code.message_id, code.claimed_by_id, code.follower_band) == (
        message.pk,
        agent.pk,
        "large",
    )
    assert outcome.available == 2


def test_a_public_reply_gets_no_code(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    pool = make_pool(tenant, owner, "AAA111")
    conversation = receive(account, item()).conversation
    for visibility in ("public", None):
        with tenant_context(tenant), pytest.raises(GoodwillPrivateOnly) as refused:
            send_goodwill_reply(
                conversation,
                membership=member(tenant, agent),
                pool=pool,
                text="Here you go",
                visibility=visibility,
            )
        assert refused.value.message.startswith(
            "A goodwill code goes only in a private reply"
        )
    with tenant_context(tenant):
        assert available_codes(pool).count() == 1
        assert not Message.objects.filter(direction="out").exists()


def test_undo_in_the_hold_gives_the_code_back(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    pool = make_pool(tenant, owner, "AAA111", mark=0)
    conversation = private_conversation(account)
    agent_member = member(tenant, agent)
    with tenant_context(tenant):
        first = send_goodwill_reply(
            conversation, membership=agent_member, pool=pool, text="Sorry."
        )
        with pytest.raises(PoolEmpty):
            send_goodwill_reply(
                conversation, membership=agent_member, pool=pool, text="Again."
            )
        cancel_scheduled_reply(first.reply.message, membership=agent_member)
        assert available_codes(pool).count() == 1
        second = send_goodwill_reply(
            conversation, membership=agent_member, pool=pool, text="Better."
        )
        assert second.code.code == "AAA111"
        assert GoodwillCode.objects.get().message_id == second.reply.message.pk


def test_a_refused_reply_claims_nothing(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    pool = make_pool(tenant, owner, "AAA111")
    conversation = private_conversation(account)
    with tenant_context(tenant), pytest.raises(Exception, match="Write a reply first"):
        send_goodwill_reply(
            conversation, membership=member(tenant, agent), pool=pool, text="  "
        )
    with tenant_context(tenant):
        assert available_codes(pool).count() == 1


def test_admins_are_emailed_once_per_crossing(
    tenant: Tenant,
    owner: User,
    agent: User,
    account: SocialAccount,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pool = make_pool(tenant, owner, "AAA111\nBBB222\nCCC333\nDDD444", mark=3)
    conversation = private_conversation(account)
    with tenant_context(tenant), django_capture_on_commit_callbacks(execute=True):
        for text in ("One", "Two"):
            send_goodwill_reply(
                conversation, membership=member(tenant, agent), pool=pool, text=text
            )
    # 3 left after the first (not low), 2 after the second: one email.
    assert [m.subject for m in mail.outbox] == [
        "[Earshot] Acme Air: goodwill pool “10% off” is low"
    ]
    assert mail.outbox[0].to == ["olivia@acme.example"]
    with tenant_context(tenant), django_capture_on_commit_callbacks(execute=True):
        send_goodwill_reply(
            conversation, membership=member(tenant, agent), pool=pool, text="Three"
        )
    assert len(mail.outbox) == 1  # still below: no second email
    with tenant_context(tenant), django_capture_on_commit_callbacks(execute=True):
        import_goodwill_codes(member(tenant, owner), pool, text="EEE555\nFFF666")
        assert GoodwillPool.objects.get().low_since is None  # re-armed
        send_goodwill_reply(
            conversation, membership=member(tenant, agent), pool=pool, text="Four"
        )
    assert len(mail.outbox) == 2


def test_the_report_counts_per_agent_brand_and_band(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    pool = make_pool(tenant, owner, "AAA111\nBBB222\nCCC333", mark=0)
    loud = private_conversation(account)
    quiet = receive(
        account, item(visibility="private", author="cust-2", followers=10)
    ).conversation
    with tenant_context(tenant):
        for conversation, who in ((loud, agent), (loud, agent), (quiet, owner)):
            send_goodwill_reply(
                conversation, membership=member(tenant, who), pool=pool, text="Sorry"
            )
        Message.objects.filter(direction="out").update(delivery_status="sent")
        now = timezone.now()
        report = gesture_report(
            member(tenant, owner),
            since=now - timedelta(days=1),
            until=now + timedelta(minutes=1),
        )
    assert report.total == 3
    assert [(r["agent"], r["gestures"]) for r in report.by_agent] == [
        ("Andy", 2),
        ("Olivia", 1),
    ]
    assert report.by_brand == [
        {"brand_id": pool.brand_id, "brand": "Acme Air", "gestures": 3}
    ]
    assert [(r["band"], r["gestures"], r["conversations"]) for r in report.by_band] == [
        ("small", 1, 1),
        ("medium", 0, 0),
        ("large", 2, 1),
    ]


# --- API -------------------------------------------------------------------------


def test_the_api_claims_and_refuses_with_field_messages(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    pool = make_pool(tenant, owner, "AAA111", mark=5)
    conversation = private_conversation(account)
    url = f"/api/v1/t/acme-air/conversations/{conversation.pk}/goodwill/"
    andy = login(agent)
    bad = andy.post(
        url, {"pool_id": "x", "text": "Hi"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json()["fields"] == {"pool_id": ["A valid integer is required."]}
    sent = andy.post(
        url, {"pool_id": pool.pk, "text": "Sorry!"}, content_type="application/json"
    )
    assert sent.status_code == 201
    assert sent.json()["code"] == "AAA111"
    assert sent.json()["pool"]["available"] == 0
    assert sent.json()["pool"]["warning"] == "“10% off” is empty. Import more codes."
    empty = andy.post(
        url, {"pool_id": pool.pk, "text": "Again"}, content_type="application/json"
    )
    assert empty.status_code == 409
    assert empty.json()["code"] == "pool_empty"
    with tenant_context(tenant):
        assert Message.objects.filter(direction="out").count() == 1


def test_the_import_api_answers_each_bad_line(tenant: Tenant, owner: User) -> None:
    pool = make_pool(tenant, owner)
    url = f"/api/v1/t/acme-air/goodwill/pools/{pool.pk}/import/"
    response = login(owner).post(
        url, {"codes": "GOOD01\nGOOD01"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "import_invalid"
    assert response.json()["details"]["lines"] == [
        {"line": 2, "text": "GOOD01", "reason": "duplicate of line 1"}
    ]
    assert codes_of(tenant) == []
    missing = login(owner).post(url, {}, content_type="application/json")
    assert missing.json()["fields"] == {"codes": ["This field is required."]}


def test_pools_api_creates_lists_and_validates(
    tenant: Tenant, owner: User, agent: User
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    url = "/api/v1/t/acme-air/goodwill/pools/"
    created = login(owner).post(
        url,
        {"brand_id": brand.pk, "name": "Lounge pass", "low_water_mark": 3},
        content_type="application/json",
    )
    assert created.status_code == 201
    duplicate = login(owner).post(
        url,
        {"brand_id": brand.pk, "name": "Lounge pass"},
        content_type="application/json",
    )
    assert duplicate.status_code == 400
    assert duplicate.json()["fields"] == {
        "name": ["Acme Air already has a pool named “Lounge pass”."]
    }
    wrong = login(owner).post(
        url,
        {"brand_id": 0, "name": "X", "low_water_mark": -1},
        content_type="application/json",
    )
    assert set(wrong.json()["fields"]) == {"brand_id", "low_water_mark"}
    assert (
        login(agent)
        .post(url, {"brand_id": brand.pk, "name": "Y"}, content_type="application/json")
        .status_code
        == 403
    )
    listed = login(agent).get(url)
    assert [p["name"] for p in listed.json()] == ["Lounge pass"]
    with tenant_context(tenant):
        assert GoodwillPool.objects.count() == 1


def test_pages_render_for_members(
    tenant: Tenant, owner: User, agent: User, account: SocialAccount
) -> None:
    make_pool(tenant, owner, "AAA111", mark=5)
    conversation = private_conversation(account)
    andy = login(agent)
    page = andy.get("/t/acme-air/settings/goodwill/")
    assert page.status_code == 200
    assert (
        "“10% off” is running low: 1 code left (warning below 5)."
        in page.content.decode()
    )
    row = andy.get(f"/t/acme-air/conversations/{conversation.pk}/goodwill/")
    assert "Send privately with a code: 10% off (1 left)" in row.content.decode()
    assert andy.get("/t/acme-air/reports/goodwill/").status_code == 200


def test_an_outsider_gets_404_everywhere_and_nothing_changes(
    tenant: Tenant,
    owner: User,
    outsider: User,
    other_tenant: Tenant,
    account: SocialAccount,
) -> None:
    pool = make_pool(tenant, owner, "AAA111")
    conversation = private_conversation(account)
    charlie = login(outsider)
    for path in (
        "/t/acme-air/settings/goodwill/",
        f"/t/acme-air/conversations/{conversation.pk}/goodwill/",
        "/t/acme-air/reports/goodwill/",
        "/api/v1/t/acme-air/goodwill/pools/",
        f"/api/v1/t/acme-air/goodwill/pools/{pool.pk}/",
        "/api/v1/t/acme-air/reports/goodwill/",
    ):
        assert charlie.get(path).status_code == 404, path
    for path, data in (
        (f"/api/v1/t/acme-air/goodwill/pools/{pool.pk}/import/", {"codes": "ZZZ999"}),
        (
            f"/api/v1/t/acme-air/conversations/{conversation.pk}/goodwill/",
            {"pool_id": pool.pk, "text": "x"},
        ),
        (
            "/api/v1/t/acme-air/goodwill/pools/",
            {"brand_id": pool.brand_id, "name": "P"},
        ),
    ):
        assert (
            charlie.post(path, data, content_type="application/json").status_code == 404
        )
    assert (
        charlie.patch(
            f"/api/v1/t/acme-air/goodwill/pools/{pool.pk}/",
            {"low_water_mark": 0},
            content_type="application/json",
        ).status_code
        == 404
    )
    assert codes_of(tenant) == ["AAA111"]
    with tenant_context(tenant):
        assert GoodwillPool.objects.get().low_water_mark == 2
        assert not Message.objects.filter(direction="out").exists()


def test_the_demo_pools_are_seeded_once(tenant: Tenant, owner: User) -> None:
    from goodwill.demo import seed_goodwill_pools

    with tenant_context(tenant):
        brand = Brand.objects.get()
        assert seed_goodwill_pools(member(tenant, owner), brand) == 2
        assert seed_goodwill_pools(member(tenant, owner), brand) == 0
        counts = {
            view.pool.name: (view.available, view.is_low)
            for view in goodwill_pools(member(tenant, owner))
        }
    assert counts == {"10% off next flight": (40, False), "Lounge pass": (5, False)}
