"""The cross-tenant IDOR matrix over every tenant-scoped route (tenancy.md §8.2).

Every URL pattern with a `tenant_slug`, and every URL of the tenant admin site, has
an entry in ROUTES. Two sweeps run over them:
- the outsider (a member of Globex only) calls Acme Air's URLs with Acme's ids;
- Acme's owner calls Acme's URLs with Globex's ids.
Both must give 404 and change nothing. `test_all_routes_are_in_the_matrix` fails
when a new route has no entry.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.timezone import now

from advocacy.models import AdvocateSuggestion, CompetitorMention
from goodwill.models import GoodwillCode, GoodwillPool
from helpdesk.models import (
    Contact,
    Conversation,
    Message,
    Note,
    SavedReply,
    Tag,
    WebhookDelivery,
    WebhookEndpoint,
)
from incidents.models import Incident, IncidentEntry, IncidentLink, IncidentUpdate
from social.models import ListeningRule, SocialAccount
from spikes.models import SpikeAlert
from tenants.admin import tenant_admin_site
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import (
    ApiToken,
    AuditEvent,
    Brand,
    Holiday,
    Invitation,
    Membership,
    SlaPolicy,
    Tenant,
    User,
)
from tenants.services import invite_member
from tests.conftest import login
from tests.factories import add_member, make_user, membership_of

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    a: Tenant
    b: Tenant
    ids: dict[str, dict[str, int]]  # tenant key -> object kind -> id


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    data: dict[str, str] | None = None


Paths = Callable[[str, dict[str, int]], list[Call]]


def _frontend() -> dict[str, Paths]:
    return {
        "frontend:workspace": lambda s, i: [Call("get", f"/t/{s}/")],
        **_inbox(),
        "frontend:members": lambda s, i: [
            Call("get", f"/t/{s}/settings/members/"),
            Call(
                "post",
                f"/t/{s}/settings/members/",
                {"email": "x@x.example", "role": "admin"},
            ),
        ],
        "frontend:member-role": lambda s, i: [
            Call(
                "post",
                f"/t/{s}/settings/members/{i['member']}/role/",
                {"role": "viewer"},
            )
        ],
        "frontend:member-remove": lambda s, i: [
            Call("post", f"/t/{s}/settings/members/{i['member']}/remove/")
        ],
        "frontend:member-languages": lambda s, i: [
            Call(
                "post",
                f"/t/{s}/settings/members/{i['member']}/languages/",
                {"languages": "fr"},
            )
        ],
        "frontend:invitation-revoke": lambda s, i: [
            Call("post", f"/t/{s}/settings/invitations/{i['invitation']}/revoke/")
        ],
        "frontend:brands": lambda s, i: [
            Call("get", f"/t/{s}/settings/brands/"),
            Call(
                "post",
                f"/t/{s}/settings/brands/",
                {"name": "Planted", "timezone": "UTC"},
            ),
        ],
        **_settings_pages(),
        "frontend:accounts": lambda s, i: [Call("get", f"/t/{s}/settings/accounts/")],
        "frontend:connect-mastodon": lambda s, i: [
            Call(
                "post",
                f"/connect/{s}/mastodon/",
                {"mastodon-brand": str(i["brand"]), "mastodon-instance": "x.test"},
            )
        ],
        "frontend:connect-bluesky": lambda s, i: [
            Call(
                "post",
                f"/connect/{s}/bluesky/",
                {
                    "bluesky-brand": str(i["brand"]),
                    "bluesky-handle": "x.bsky.social",
                    "bluesky-app_password": "x",
                },
            )
        ],
        "frontend:account-disconnect": lambda s, i: [
            Call("post", f"/connect/{s}/accounts/{i['social_account']}/disconnect/")
        ],
        "social:connect": lambda s, i: [
            Call("get", f"/t/{s}/social/connect/sandbox/?brand={i['brand']}")
        ],
        "frontend:workspace-delete": lambda s, i: [
            Call("get", f"/t/{s}/settings/workspace/delete/"),
            Call("post", f"/t/{s}/settings/workspace/delete/", {"confirm_name": "x"}),
        ],
        **_webhook_settings(),
        "frontend:api-tokens": lambda s, i: [
            Call("get", f"/t/{s}/settings/api-tokens/"),
            Call(
                "post", f"/t/{s}/settings/api-tokens/", {"name": "x", "scope": "read"}
            ),
        ],
        "frontend:api-token-revoke": lambda s, i: [
            Call("post", f"/t/{s}/settings/api-tokens/{i['api_token']}/revoke/")
        ],
    }


def _settings_pages() -> dict[str, Paths]:
    """Brand settings, listening rules and saved replies: pages and the fragments
    their scripts re-fetch (their writes go through the API, below)."""
    page = "/t/{s}/settings/"
    return {
        "frontend:brand-settings": lambda s, i: [
            Call("get", f"{page.format(s=s)}brands/{i['brand']}/")
        ],
        "frontend:brand-status": lambda s, i: [
            Call("get", f"{page.format(s=s)}brands/{i['brand']}/status/")
        ],
        "frontend:listening-rules": lambda s, i: [
            Call("get", f"{page.format(s=s)}listening/")
        ],
        "frontend:listening-rule-list": lambda s, i: [
            Call("get", f"{page.format(s=s)}listening/rules/")
        ],
        "frontend:saved-replies": lambda s, i: [
            Call("get", f"{page.format(s=s)}saved-replies/")
        ],
        "frontend:saved-reply-list": lambda s, i: [
            Call("get", f"{page.format(s=s)}saved-replies/list/")
        ],
    }


def _webhook_settings() -> dict[str, Paths]:
    page = "/t/{s}/settings/webhooks/"
    form = {"url": "https://hooks.example.com/x", "description": "x"}
    routes: dict[str, Paths] = {
        "frontend:webhooks": lambda s, i: [
            Call("get", page.format(s=s)),
            Call("post", page.format(s=s), form),
        ],
        "frontend:webhook": lambda s, i: [
            Call("get", f"{page.format(s=s)}{i['webhook_endpoint']}/"),
            Call("post", f"{page.format(s=s)}{i['webhook_endpoint']}/", form),
        ],
    }

    def post(action: str) -> Paths:
        return lambda s, i: [
            Call("post", f"{page.format(s=s)}{i['webhook_endpoint']}/{action}/")
        ]

    for action in ("enable", "disable", "ping", "delete", "rotate", "reveal"):
        routes[f"frontend:webhook-{action}"] = post(action)
    return routes


def _inbox() -> dict[str, Paths]:
    """The inbox page and the fragments its scripts fetch on live events."""
    return {
        "frontend:inbox": lambda s, i: [Call("get", f"/t/{s}/inbox/")],
        "frontend:inbox-conversation": lambda s, i: [
            Call("get", f"/t/{s}/inbox/{i['conversation']}/")
        ],
        "frontend:conversation-row": lambda s, i: [
            Call("get", f"/t/{s}/inbox/rows/{i['conversation']}/")
        ],
        "frontend:inbox-counts": lambda s, i: [Call("get", f"/t/{s}/inbox/counts/")],
        "frontend:presence": lambda s, i: [Call("get", f"/t/{s}/inbox/presence/")],
        "frontend:reports": lambda s, i: [Call("get", f"/t/{s}/reports/")],
        "frontend:conversation": lambda s, i: [
            Call("get", f"/t/{s}/conversations/{i['conversation']}/")
        ],
        "frontend:conversation-header": lambda s, i: [
            Call("get", f"/t/{s}/conversations/{i['conversation']}/header/")
        ],
        "frontend:conversation-timeline": lambda s, i: [
            Call("get", f"/t/{s}/conversations/{i['conversation']}/timeline/")
        ],
        "frontend:composer": lambda s, i: [
            Call("get", f"/t/{s}/conversations/{i['conversation']}/composer/")
        ],
        "frontend:contact-panel": lambda s, i: [
            Call("get", f"/t/{s}/conversations/{i['conversation']}/contact/")
        ],
        "frontend:message-row": lambda s, i: [
            Call(
                "get",
                f"/t/{s}/conversations/{i['conversation']}/messages/{i['message']}/",
            )
        ],
        "frontend:contact-merge-candidates": lambda s, i: [
            Call("get", f"/t/{s}/contacts/{i['contact']}/merge-candidates/?q=a")
        ],
    }


ADMIN_OBJECTS = {
    "tenants_brand": "brand",
    "tenants_membership": "member",
    "tenants_invitation": "invitation",
    "tenants_auditevent": "audit",
    "tenants_user": "user",
    "helpdesk_savedreply": "saved_reply",
    "helpdesk_tag": "tag",
    "helpdesk_contact": "contact",
    "helpdesk_conversation": "conversation",
    "social_listeningrule": "listening_rule",
    "social_socialaccount": "social_account",
    "tenants_slapolicy": "sla_policy",
    "tenants_holiday": "holiday",
    "incidents_incident": "incident",
    "advocacy_advocatesuggestion": "advocate_suggestion",
    "advocacy_competitormention": "competitor_mention",
    "goodwill_goodwillpool": "goodwill_pool",
    "goodwill_goodwillcode": "goodwill_code",
}


def _admin() -> dict[str, Paths]:
    routes: dict[str, Paths] = {
        "tenant_admin:index": lambda s, i: [Call("get", f"/t/{s}/admin/")],
        "tenant_admin:login": lambda s, i: [Call("get", f"/t/{s}/admin/login/")],
        "tenant_admin:logout": lambda s, i: [Call("post", f"/t/{s}/admin/logout/")],
        "tenant_admin:password_change": lambda s, i: [
            Call("get", f"/t/{s}/admin/password_change/")
        ],
        "tenant_admin:password_change_done": lambda s, i: [
            Call("get", f"/t/{s}/admin/password_change/done/")
        ],
        "tenant_admin:jsi18n": lambda s, i: [Call("get", f"/t/{s}/admin/jsi18n/")],
        "tenant_admin:app_list": lambda s, i: [
            Call("get", f"/t/{s}/admin/tenants/"),
            Call("get", f"/t/{s}/admin/helpdesk/"),
            Call("get", f"/t/{s}/admin/social/"),
            Call("get", f"/t/{s}/admin/incidents/"),
            Call("get", f"/t/{s}/admin/advocacy/"),
            Call("get", f"/t/{s}/admin/goodwill/"),
        ],
        "tenant_admin:view_on_site": lambda s, i: [
            Call("get", f"/t/{s}/admin/r/1/{i['brand']}/")
        ],
        "tenant_admin:autocomplete": lambda s, i: [
            Call(
                "get",
                f"/t/{s}/admin/autocomplete/?app_label=tenants&model_name=membership"
                "&field_name=user&term=",
            ),
            Call(
                "get",
                f"/t/{s}/admin/autocomplete/?app_label=helpdesk&model_name=savedreply"
                "&field_name=brand&term=",
            ),
        ],
        "tenant_admin:<catch-all>": lambda s, i: [
            Call("get", f"/t/{s}/admin/nothing/")
        ],
    }
    for table, kind in ADMIN_OBJECTS.items():
        base = "/t/{s}/admin/" + table.replace("_", "/", 1) + "/"

        def paths(action: str, base: str = base, kind: str = kind) -> Paths:
            def build(s: str, i: dict[str, int]) -> list[Call]:
                root = base.format(s=s)
                return {
                    "changelist": [Call("get", root)],
                    "add": [
                        Call("get", f"{root}add/"),
                        Call("post", f"{root}add/", {}),
                    ],
                    "change": [
                        Call("get", f"{root}{i[kind]}/change/"),
                        Call("post", f"{root}{i[kind]}/change/", {"role": "viewer"}),
                    ],
                    "delete": [
                        Call("get", f"{root}{i[kind]}/delete/"),
                        Call("post", f"{root}{i[kind]}/delete/", {"post": "yes"}),
                    ],
                    "history": [Call("get", f"{root}{i[kind]}/history/")],
                    "redirect": [Call("get", f"{root}{i[kind]}/")],
                }[action]

            return build

        for action in ("changelist", "add", "change", "delete", "history"):
            routes[f"tenant_admin:{table}_{action}"] = paths(action)
        routes[f"tenant_admin:{table}<redirect>"] = paths("redirect")
    return routes


def _api() -> dict[str, Paths]:
    """The REST API, called with the browser session (tokens: test_*_api.py)."""
    v = "/api/v1/t/{s}/"

    def calls(*specs: tuple[str, str]) -> Paths:
        def build(s: str, i: dict[str, int]) -> list[Call]:
            return [
                Call(method, (v + path).format(s=s, **i), {"text": "x"})
                for method, path in specs
            ]

        return build

    return {
        "api:ping": calls(("get", "ping/")),
        "api:conversation-list": calls(("get", "conversations/")),
        "api:conversation-detail": calls(
            ("get", "conversations/{conversation}/"),
            ("patch", "conversations/{conversation}/"),
        ),
        "api:message-list": calls(
            ("get", "conversations/{conversation}/messages/"),
            ("post", "conversations/{conversation}/messages/"),
        ),
        "api:conversation-move-private": calls(
            ("post", "conversations/{conversation}/move-private/")
        ),
        "api:conversation-no-reply": calls(
            ("post", "conversations/{conversation}/no-reply/")
        ),
        "api:note-list": calls(
            ("get", "conversations/{conversation}/notes/"),
            ("post", "conversations/{conversation}/notes/"),
        ),
        "api:message-detail": calls(
            ("get", "messages/{message}/"), ("patch", "messages/{message}/")
        ),
        "api:message-cancel": calls(("post", "messages/{message}/cancel/")),
        "api:message-retry": calls(("post", "messages/{message}/retry/")),
        "api:channel-list": calls(("get", "channels/"), ("post", "channels/")),
        "api:webhook-list": calls(("get", "webhooks/"), ("post", "webhooks/")),
        "api:webhook-detail": calls(
            ("get", "webhooks/{webhook_endpoint}/"),
            ("patch", "webhooks/{webhook_endpoint}/"),
            ("delete", "webhooks/{webhook_endpoint}/"),
        ),
        "api:webhook-secret": calls(
            ("get", "webhooks/{webhook_endpoint}/secret/"),
            ("post", "webhooks/{webhook_endpoint}/secret/"),
        ),
        "api:webhook-ping": calls(("post", "webhooks/{webhook_endpoint}/ping/")),
        "api:webhook-delivery-list": calls(
            ("get", "webhooks/{webhook_endpoint}/deliveries/")
        ),
        "api:channel-message-create": calls(
            ("post", "channels/{api_channel}/messages/")
        ),
        **_api_reports(),
    }


def _api_reports() -> dict[str, Paths]:
    """The reports (read only). Another workspace's brand, account or agent id in
    the filters is a field error (tests/helpdesk/test_reports_api.py)."""

    def get(path: str) -> Paths:
        def build(s: str, i: dict[str, int]) -> list[Call]:
            return [Call("get", f"/api/v1/t/{s}/reports/{path}")]

        return build

    return {
        f"api:report-{name}": get(path)
        for name, path in (
            ("summary", "summary/"),
            ("timeseries", "timeseries/"),
            ("agents", "agents/"),
            ("fairness", "fairness/"),
            ("heatmap", "heatmap/"),
            ("aggregates-csv", "aggregates.csv"),
            ("conversations-csv", "conversations.csv"),
        )
    }


def _api_resources() -> dict[str, Paths]:
    """Contacts, saved replies, brands, members, tokens, accounts and listening
    rules; each write carries data that would change something if it got through."""
    v = "/api/v1/t/{s}/"

    def calls(*specs: tuple[str, str, dict[str, Any] | None]) -> Paths:
        def build(s: str, i: dict[str, int]) -> list[Call]:
            return [
                Call(
                    method,
                    (v + path).format(s=s, **i),
                    {k: str(x).format(**i) for k, x in (data or {}).items()},
                )
                for method, path, data in specs
            ]

        return build

    rule = {"brand_id": "{brand}", "name": "Pwned", "query": "pwned"}
    return {
        "api:contact-list": calls(("get", "contacts/?q=customer", None)),
        "api:contact-detail": calls(
            ("get", "contacts/{contact}/", None),
            ("patch", "contacts/{contact}/", {"display_name": "Pwned", "notes": "x"}),
        ),
        "api:contact-merge": calls(
            ("post", "contacts/{contact}/merge/", {"other_id": "{other_contact}"})
        ),
        "api:saved-reply-list": calls(
            ("get", "saved-replies/", None),
            ("post", "saved-replies/", {"title": "Pwned", "body": "x"}),
        ),
        "api:saved-reply-detail": calls(
            ("get", "saved-replies/{saved_reply}/", None),
            ("patch", "saved-replies/{saved_reply}/", {"title": "Pwned"}),
            ("delete", "saved-replies/{saved_reply}/", None),
        ),
        "api:saved-reply-render": calls(
            (
                "get",
                "saved-replies/{saved_reply}/render/?conversation={conversation}",
                None,
            )
        ),
        "api:brand-list": calls(
            ("get", "brands/", None), ("post", "brands/", {"name": "Pwned"})
        ),
        "api:brand-detail": calls(
            ("get", "brands/{brand}/", None),
            ("patch", "brands/{brand}/", {"name": "Pwned", "timezone": "Asia/Tokyo"}),
        ),
        "api:member-list": calls(("get", "members/", None)),
        "api:member-languages": calls(
            ("put", "members/{member}/languages/", {"languages": "fr"})
        ),
        "api:api-token-list": calls(
            ("get", "tokens/", None),
            ("post", "tokens/", {"name": "Pwned", "scope": "read"}),
        ),
        "api:api-token-revoke": calls(("post", "tokens/{api_token}/revoke/", None)),
        "api:social-account-list": calls(("get", "accounts/", None)),
        "api:social-account-detail": calls(("get", "accounts/{social_account}/", None)),
        "api:listening-rule-list": calls(
            ("get", "listening-rules/", None), ("post", "listening-rules/", rule)
        ),
        "api:listening-rule-detail": calls(
            ("get", "listening-rules/{listening_rule}/", None),
            ("patch", "listening-rules/{listening_rule}/", {"name": "Pwned"}),
            ("delete", "listening-rules/{listening_rule}/", None),
        ),
        "api:listening-rule-test": calls(
            ("post", "listening-rules/test/", {"query": "acme", "text": "acme"})
        ),
        "api:brand-sla-policy": calls(
            ("get", "brands/{brand}/sla-policy/", None),
            ("put", "brands/{brand}/sla-policy/", {"first_response_minutes": 1}),
            ("delete", "brands/{brand}/sla-policy/", None),
        ),
        "api:brand-deflection": calls(
            ("get", "brands/{brand}/deflection/", None),
            ("put", "brands/{brand}/deflection/", {"phrases": "x"}),
        ),
        "api:sla-policy": calls(
            ("get", "sla-policy/", None),
            ("put", "sla-policy/", {"first_response_minutes": 1}),
        ),
        "api:brand-holiday-list": calls(
            ("get", "brands/{brand}/holidays/", None),
            (
                "post",
                "brands/{brand}/holidays/",
                {"name": "Pwned", "start_date": "2030-01-01"},
            ),
        ),
        "api:brand-holiday-detail": calls(
            ("delete", "brands/{brand}/holidays/{holiday}/", None),
        ),
    }


def _spikes() -> dict[str, Paths]:
    """Spike alerts (R13): the pages, the banner's and the list's fragments and
    the API."""
    return {
        "spikes:alerts": lambda s, i: [Call("get", f"/t/{s}/alerts/")],
        "spikes:banner": lambda s, i: [Call("get", f"/t/{s}/alerts/banner/")],
        "spikes:panels": lambda s, i: [Call("get", f"/t/{s}/alerts/panels/")],
        "spikes:alert": lambda s, i: [
            Call("get", f"/t/{s}/alerts/{i['spike_alert']}/")
        ],
        "spikes:acknowledge": lambda s, i: [
            Call("post", f"/t/{s}/alerts/{i['spike_alert']}/acknowledge/")
        ],
        "api:spike-alert-list": lambda s, i: [Call("get", f"/api/v1/t/{s}/alerts/")],
        "api:spike-alert-acknowledge": lambda s, i: [
            Call("post", f"/api/v1/t/{s}/alerts/{i['spike_alert']}/acknowledge/")
        ],
    }


def _goodwill() -> dict[str, Paths]:
    """Goodwill gestures: the pools page, the composer row, the report section,
    and the API (pools, import, the one-click private reply, the report)."""
    v = "/api/v1/t/{s}/"

    def api(method: str, path: str, data: dict[str, str] | None = None) -> Call:
        return Call(method, v.format(s="{s}") + path, data)

    def build(*calls: Call) -> Paths:
        return lambda s, i: [
            Call(
                c.method,
                c.path.format(s=s, **i),
                {k: x.format(**i) for k, x in (c.data or {}).items()},
            )
            for c in calls
        ]

    pool = "goodwill/pools/{goodwill_pool}/"
    return {
        "goodwill:pools": build(Call("get", "/t/{s}/settings/goodwill/")),
        "goodwill:composer": build(
            Call("get", "/t/{s}/conversations/{conversation}/goodwill/")
        ),
        "goodwill:report": build(Call("get", "/t/{s}/reports/goodwill/")),
        "api:goodwill-pool-list": build(
            api("get", "goodwill/pools/"),
            api("post", "goodwill/pools/", {"brand_id": "{brand}", "name": "Pwned"}),
        ),
        "api:goodwill-pool-detail": build(
            api("get", pool), api("patch", pool, {"description": "Pwned"})
        ),
        "api:goodwill-code-import": build(
            api("post", pool + "import/", {"codes": "PWNED1"})
        ),
        "api:goodwill-reply-create": build(
            api(
                "post",
                "conversations/{conversation}/goodwill/",
                {"pool_id": "{goodwill_pool}", "text": "Pwned"},
            )
        ),
        "api:report-goodwill": build(api("get", "reports/goodwill/")),
    }


def _advocacy() -> dict[str, Paths]:
    """Advocates (R14) and the competitor feed: the pages and the API."""
    page, v = "/t/{s}/reports/", "/api/v1/t/{s}/"

    def build(*calls: Call) -> Paths:
        return lambda s, i: [
            Call(c.method, c.path.format(s=s, **i), c.data) for c in calls
        ]

    decide = {"decision": "confirm", "note": "Pwned"}
    one = v + "advocates/{advocate_suggestion}/"
    return {
        "advocacy:advocates": build(Call("get", page + "advocates/")),
        "advocacy:advocates-scan": build(Call("post", page + "advocates/scan/")),
        "advocacy:advocate-decide": build(
            Call("post", page + "advocates/{advocate_suggestion}/decide/", decide)
        ),
        "advocacy:competitors": build(Call("get", page + "competitors/")),
        "api:advocate-list": build(Call("get", v + "advocates/")),
        "api:advocate-scan": build(Call("post", v + "advocates/scan/")),
        "api:advocate-confirm": build(Call("post", one + "confirm/", {"note": "x"})),
        "api:advocate-dismiss": build(Call("post", one + "dismiss/", {"note": "x"})),
        "api:competitor-mention-list": build(Call("get", v + "competitors/mentions/")),
        "api:competitor-volume": build(Call("get", v + "competitors/volume/")),
    }


def _incidents() -> dict[str, Paths]:
    """Incidents (R13): the pages, the progress fragment and the API."""
    page, v = "/t/{s}/incidents/{incident}/", "/api/v1/t/{s}/incidents/"
    one = v + "{incident}/"
    update = one + "updates/{incident_update}/"
    send = {"text": "{{first_name}} pwned", "idempotency_key": KEY}

    def build(*calls: Call) -> Paths:
        return lambda s, i: [
            Call(
                c.method,
                c.path.format(s=s, **i),
                {k: x.format(**i) for k, x in (c.data or {}).items()},
            )
            for c in calls
        ]

    return {
        "frontend:incidents": build(Call("get", "/t/{s}/incidents/")),
        "frontend:incident": build(Call("get", page)),
        "frontend:incident-progress": build(Call("get", page + "progress/")),
        "api:incident-list": build(Call("get", v), Call("post", v, {"title": "Pwned"})),
        "api:incident-detail": build(
            Call("get", one), Call("patch", one, {"title": "Pwned"})
        ),
        "api:incident-link": build(
            Call("post", one + "links/", {"conversation_ids": "{conversation}"})
        ),
        "api:incident-unlink": build(Call("delete", one + "links/{conversation}/")),
        "api:incident-note": build(Call("post", one + "notes/", {"text": "Pwned"})),
        "api:incident-holding-statement": build(
            Call("put", one + "holding-statement/", {"text": "Pwned"})
        ),
        "api:incident-preview": build(
            Call("post", one + "preview/", {"text": "{{first_name}}"})
        ),
        "api:incident-update-list": build(
            Call("get", one + "updates/"), Call("post", one + "updates/", send)
        ),
        "api:incident-update-detail": build(Call("get", update)),
        "api:incident-update-retry": build(Call("post", update + "retry/")),
        "api:incident-close": build(
            Call("post", one + "close/", {"resolve_ids": "{conversation}"})
        ),
    }


KEY = "55555555-5555-5555-5555-555555555555"
ROUTES: dict[str, Paths] = _frontend() | _admin() | _api() | _api_resources()
ROUTES |= _incidents()
ROUTES |= _advocacy()
ROUTES |= _goodwill()
ROUTES |= _spikes()


def _walk(patterns: list[Any], prefix: str, namespace: str) -> list[tuple[str, str]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            found.append(
                (prefix + str(pattern.pattern), namespace + (pattern.name or ""))
            )
    return found


def tenant_route_names() -> set[str]:
    names = {
        name
        for route, name in _walk(get_resolver().url_patterns, "", "")
        if "tenant_slug" in route
    }
    for route, name in _walk(tenant_admin_site.urls[0], "", "tenant_admin:"):
        if name != "tenant_admin:":
            names.add(name)
        elif route.endswith("<path:object_id>/"):
            names.add(
                f"tenant_admin:{route.split('/')[0]}_{route.split('/')[1]}<redirect>"
            )
        else:
            names.add("tenant_admin:<catch-all>")
    return names


# Routes with a `tenant_slug` that are public by design, so the matrix's "an
# outsider gets 404" cannot apply; each names the test that proves what it exposes.
PUBLIC_ROUTES = {
    # R8: online/offline and typical reply time, for anyone (an unknown brand, or
    # another workspace's brand under this slug, is 404).
    "status:brand": "tests/helpdesk/test_status_endpoint.py",
    # R9: the response badge of a brand that publishes it (404 otherwise).
    "status:badge": "tests/helpdesk/test_badge.py",
}


def test_all_routes_are_in_the_matrix() -> None:
    assert tenant_route_names() == set(ROUTES) | set(PUBLIC_ROUTES)
    assert set(ROUTES).isdisjoint(PUBLIC_ROUTES)
    registered = {m._meta.db_table for m in tenant_admin_site._registry}
    assert registered == set(ADMIN_OBJECTS)


def snapshot(tenant: Tenant) -> dict[str, Any]:
    with tenant_context(tenant):
        return {
            "members": sorted(Membership.objects.values_list("user__email", "role")),
            "brands": sorted(Brand.objects.values_list("name", "slug")),
            "invitations": sorted(
                Invitation.objects.values_list("email", "role", "revoked_at")
            ),
            "audit": AuditEvent.objects.count(),
            "messages": sorted(
                Message.objects.values_list("text", "delivery_status", "visibility")
            ),
            "notes": Note.objects.count(),
            "accounts": sorted(
                SocialAccount.objects.values_list("platform", "handle", "status")
            ),
            "conversations": sorted(
                Conversation.objects.values_list(
                    "status", "priority", "assignee_id", "channel_state"
                )
            ),
            "status": Tenant.objects.get(pk=tenant.pk).status,
            "webhooks": sorted(
                WebhookEndpoint.objects.values_list(
                    "url", "description", "is_active", "secret_encrypted"
                )
            ),
            "webhook_deliveries": WebhookDelivery.objects.count(),
            "contacts": sorted(
                map(
                    repr,
                    Contact.objects.values_list(
                        "display_name",
                        "email",
                        "notes",
                        "external_crm_id",
                        "merged_into_id",
                    ),
                )
            ),
            "saved_replies": sorted(
                SavedReply.objects.values_list("title", "body", "brand_id")
            ),
            "brand_settings": sorted(
                Brand.objects.values_list(
                    "name", "timezone", "public_reply_limit", "send_hold_seconds"
                )
            ),
            "listening_rules": sorted(
                ListeningRule.objects.values_list("name", "query", "enabled")
            ),
            "api_tokens": sorted(
                map(repr, ApiToken.objects.values_list("name", "scope", "revoked_at"))
            ),
            "sla_policies": sorted(
                map(
                    repr,
                    SlaPolicy.objects.values_list(
                        "brand_id", "first_response_minutes", "updated_at"
                    ),
                )
            ),
            "holidays": sorted(
                Holiday.objects.values_list("name", "start_date", "end_date")
            ),
            "incidents": [
                *sorted(
                    map(
                        repr,
                        Incident.objects.values_list(
                            "title", "status", "holding_statement"
                        ),
                    )
                ),
                IncidentLink.objects.count(),
                IncidentEntry.objects.count(),
                IncidentUpdate.objects.count(),
            ],
            "advocacy": [
                *sorted(
                    map(
                        repr,
                        AdvocateSuggestion.objects.values_list(
                            "status", "decision_note", "positive_count"
                        ),
                    )
                ),
                CompetitorMention.objects.count(),
            ],
            "goodwill": sorted(
                map(
                    repr,
                    GoodwillPool.objects.values_list(
                        "name", "description", "low_water_mark"
                    ),
                )
            )
            + sorted(map(repr, GoodwillCode.objects.values_list("code", "message_id"))),
            "spike_alerts": sorted(
                map(repr, SpikeAlert.objects.values_list("status", "acknowledged_at"))
            ),
        }


@pytest.fixture
def world(owner: User, tenant: Tenant, outsider: User, other_tenant: Tenant) -> World:
    ids: dict[str, dict[str, int]] = {}
    for key, workspace, boss in (("a", tenant, owner), ("b", other_tenant, outsider)):
        member = make_user(f"member@{workspace.slug}.example")
        add_member(workspace, member, Membership.Role.AGENT)
        boss_membership = membership_of(workspace, boss)
        with tenant_context(workspace):
            invitation = invite_member(
                boss_membership, email=f"new@{workspace.slug}.example", role="agent"
            )
            contact = Contact.objects.create(
                display_name=f"Customer of {workspace.name}"
            )
            brand = Brand.objects.get()
            conversation = Conversation.objects.create(
                brand=brand, contact=contact, platform="sandbox", origin="mention"
            )
            account = SocialAccount.objects.create(
                brand=brand, platform="sandbox", external_id=f"acct-{key}", handle=key
            )
            endpoint = WebhookEndpoint.objects.create(
                url=f"https://hooks.{workspace.slug}.example/earshot",
                description=f"Hooks of {workspace.name}",
                secret_encrypted=f"not-a-real-ciphertext-{key}",
            )
            ids[key] = {
                "listening_rule": ListeningRule.objects.create(
                    brand=brand,
                    name=f"Mentions of {workspace.name}",
                    query='"acme air"',
                ).pk,
                "social_account": account.pk,
                "api_channel": SocialAccount.objects.create(
                    brand=brand, platform="api", external_id=f"api-{key}", handle=key
                ).pk,
                "webhook_endpoint": endpoint.pk,
                "other_contact": Contact.objects.create(
                    display_name=f"Second customer of {workspace.name}"
                ).pk,
                "api_token": create_api_token(
                    boss_membership, name=f"Token of {workspace.name}", scope="read"
                )[0].pk,
                "saved_reply": SavedReply.objects.create(
                    brand=brand,
                    title=f"Hello from {workspace.name}",
                    body="Hi {first_name}",
                ).pk,
                "tag": Tag.objects.create(name=f"tag-{workspace.slug}").pk,
                "sla_policy": SlaPolicy.objects.create(
                    brand=brand, first_response_minutes=42
                ).pk,
                "holiday": Holiday.objects.create(
                    brand=brand,
                    name=f"Holiday of {workspace.name}",
                    start_date=date(2026, 12, 25),
                    end_date=date(2026, 12, 26),
                ).pk,
                "contact": contact.pk,
                "conversation": conversation.pk,
                **_incident_ids(brand, conversation),
                **_advocacy_ids(brand, contact, key),
                **_goodwill_ids(brand, key),
                "spike_alert": SpikeAlert.objects.create(
                    brand=brand,
                    window_start=now(),
                    count=40,
                    baseline=2.0,
                    threshold=10.0,
                ).pk,
                "message": Message.objects.create(
                    conversation=conversation,
                    platform="sandbox",
                    direction="out",
                    visibility="public",
                    text=f"Held reply of {workspace.name}",
                    delivery_status="scheduled",
                ).pk,
                "member": membership_of(workspace, member).pk,
                "invitation": invitation.pk,
                "brand": Brand.objects.get().pk,
                "audit": AuditEvent.objects.first().pk,  # type: ignore[union-attr]
                "user": member.pk,
            }
    return World(a=tenant, b=other_tenant, ids=ids)


def _goodwill_ids(brand: Brand, key: str) -> dict[str, int]:
    pool = GoodwillPool.objects.create(brand=brand, name=f"Voucher of {brand.name}")
    code = GoodwillCode.objects.create(pool=pool, code=f"CODE-{key}")
    return {"goodwill_pool": pool.pk, "goodwill_code": code.pk}


def _advocacy_ids(brand: Brand, contact: Contact, key: str) -> dict[str, int]:
    rule = ListeningRule.objects.create(
        brand=brand, name=f"Rival {key}", query="rival", action="feed", competitor=True
    )
    mention = CompetitorMention.objects.create(
        rule=rule,
        brand=brand,
        platform="x",
        external_id=f"rival-{key}",
        text="rival",
        sentiment="neutral",
        posted_at=now(),
    )
    suggestion = AdvocateSuggestion.objects.create(contact=contact, positive_count=3)
    return {"advocate_suggestion": suggestion.pk, "competitor_mention": mention.pk}


def _incident_ids(brand: Brand, conversation: Conversation) -> dict[str, int]:
    incident = Incident.objects.create(title=f"Outage of {brand.name}", brand=brand)
    IncidentLink.objects.create(incident=incident, conversation=conversation)
    update = IncidentUpdate.objects.create(incident=incident, text="{first_name}")
    return {"incident": incident.pk, "incident_update": update.pk}


def _call(client: Any, call: Call) -> Any:
    # Redirects are followed: the admin's `<id>/` redirects to `<id>/change/`
    # whatever the id, and what matters is where the caller ends up.
    if call.method == "get":
        return client.get(call.path, follow=True)
    if call.path.startswith("/api/"):
        return getattr(client, call.method)(
            call.path, call.data or {}, content_type="application/json"
        )
    return client.post(call.path, call.data or {}, follow=True)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_idor_matrix(route: str, world: World, outsider: User, owner: User) -> None:
    before_a, before_b = snapshot(world.a), snapshot(world.b)
    charlie = login(outsider)
    for call in ROUTES[route](world.a.slug, world.ids["a"]):
        response = _call(charlie, call)
        assert response.status_code == 404, (call, response.status_code)
        assert b"Acme" not in response.content
    olivia = login(owner)
    for call in ROUTES[route](world.a.slug, world.ids["b"]):
        if world.ids["b"] and any(str(v) in call.path for v in world.ids["b"].values()):
            response = _call(olivia, call)
            assert response.status_code == 404, (call, response.status_code)
            assert b"Globex" not in response.content
    assert snapshot(world.a) == before_a
    assert snapshot(world.b) == before_b


def test_unknown_workspace_and_non_member_get_the_same_404(
    outsider: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    charlie = login(outsider)
    unknown = charlie.get("/t/no-such-workspace/")
    foreign = charlie.get("/t/acme-air/")
    assert unknown.status_code == foreign.status_code == 404
    # Per-response randomness (CSP nonce, masked CSRF token) aside, they are equal.
    noise = re.compile(rb'(nonce|value)="[^"]+"')
    assert noise.sub(b"", unknown.content) == noise.sub(b"", foreign.content)


def test_anonymous_visitor_is_sent_to_login_without_learning_anything(
    tenant: Tenant,
) -> None:
    from django.test import Client

    client = Client()
    known = client.get("/t/acme-air/settings/members/")
    unknown = client.get("/t/no-such-workspace/settings/members/")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == "/accounts/login/?next=/t/acme-air/settings/members/"
    assert (
        unknown["Location"]
        == "/accounts/login/?next=/t/no-such-workspace/settings/members/"
    )


def test_lists_show_no_other_tenant_rows(world: World, owner: User) -> None:
    olivia = login(owner)
    for path in (
        "/t/acme-air/",
        "/t/acme-air/settings/members/",
        "/t/acme-air/settings/brands/",
        "/t/acme-air/settings/webhooks/",
        "/t/acme-air/settings/api-tokens/",
        "/t/acme-air/settings/listening/",
        "/t/acme-air/settings/saved-replies/",
        "/t/acme-air/settings/goodwill/",
        "/t/acme-air/admin/goodwill/goodwillpool/",
        "/t/acme-air/admin/goodwill/goodwillcode/",
        "/t/acme-air/admin/tenants/brand/",
        "/t/acme-air/admin/tenants/membership/",
        "/t/acme-air/admin/tenants/invitation/",
        "/t/acme-air/admin/tenants/auditevent/",
        "/t/acme-air/admin/tenants/user/",
        "/t/acme-air/admin/tenants/user/?q=member",
        "/t/acme-air/admin/helpdesk/savedreply/",
        "/t/acme-air/admin/helpdesk/tag/",
        "/t/acme-air/admin/helpdesk/contact/?q=customer",
        "/t/acme-air/admin/helpdesk/conversation/",
        "/t/acme-air/incidents/",
        "/t/acme-air/admin/incidents/incident/",
        "/t/acme-air/admin/tenants/membership/?q=member",
    ):
        response = olivia.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert "globex" not in body.lower(), path


def test_admin_autocomplete_sees_only_this_workspace(world: World, owner: User) -> None:
    response = login(owner).get(
        "/t/acme-air/admin/autocomplete/",
        {
            "app_label": "tenants",
            "model_name": "membership",
            "field_name": "user",
            "term": "",
        },
    )
    assert response.status_code == 200
    emails = sorted(result["text"] for result in response.json()["results"])
    assert emails == ["member@acme-air.example", "olivia@acme.example"]
    brands = login(owner).get(
        "/t/acme-air/admin/autocomplete/",
        {"app_label": "helpdesk", "model_name": "savedreply", "field_name": "brand"},
    )
    assert [r["text"] for r in brands.json()["results"]] == ["Acme Air"]
