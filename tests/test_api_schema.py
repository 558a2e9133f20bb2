"""The OpenAPI schema is valid, and schemathesis finds no 500 anywhere in the API.

Every operation of `/api/schema/` is called with generated data (bounded examples)
as Acme's owner with an admin-scope token, against the in-process WSGI app and the
real database. Generated ids mostly miss (404), generated bodies are mostly invalid
(400): the point is that nothing a client sends ends in a server error.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error

from advocacy.models import AdvocateSuggestion
from goodwill.models import GoodwillCode, GoodwillPool
from helpdesk.models import Contact, Conversation, Message, SavedReply
from incidents.models import Incident, IncidentLink
from social.models import SocialAccount
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db


def test_the_schema_is_valid_openapi() -> None:
    document = openapi_document()
    validate(document)
    assert document["info"]["title"] == "Earshot API"
    paths = document["paths"]
    assert all(path.startswith("/api/v1/t/{tenant_slug}/") for path in paths)
    assert "bearerAuth" in str(document["components"].get("securitySchemes", {})) or (
        "tokenAuth" in str(document["components"].get("securitySchemes", {}))
    )


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    # Like Django's test client: keep the test's connection (and its transaction)
    # open across requests instead of closing it when each request finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Built at collection from the same generator `/api/schema/` serves (no request
# needed); calls go to the in-process WSGI app.
def openapi_document() -> dict[str, Any]:
    """The document `/api/schema/` serves, from drf-spectacular's generator."""
    generator: Any = SchemaGenerator()  # type: ignore[no-untyped-call]
    document: dict[str, Any] = generator.get_schema(request=None, public=True)
    return document


schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = get_wsgi_application()


@pytest.fixture
def owner_token(tenant: Tenant, owner: User) -> str:
    with tenant_context(tenant):
        _, raw = create_api_token(
            membership_of(tenant, owner), name="fuzz", scope="admin"
        )
    return raw


@pytest.fixture
def real_ids(tenant: Tenant) -> dict[str, int]:
    """Ids of real objects, so generated bodies reach the handlers, not just 404."""
    with tenant_context(tenant):
        brand = Brand.objects.get()
        contact = Contact.objects.create(display_name="Jo")
        conversation = Conversation.objects.create(
            brand=brand, contact=contact, platform="sandbox", origin="mention"
        )
        message = Message.objects.create(
            conversation=conversation,
            platform="sandbox",
            direction="out",
            visibility="public",
            text="Held reply",
            delivery_status="scheduled",
        )
        channel = SocialAccount.objects.create(
            brand=brand, platform="api", external_id="api-fuzz", handle="fuzz"
        )
        saved = SavedReply.objects.create(brand=brand, title="Hi", body="Hi {name}")
        pool = GoodwillPool.objects.create(brand=brand, name="Voucher")
        GoodwillCode.objects.create(pool=pool, code="FUZZ01")
        incident = Incident.objects.create(title="AA31 cancelled")
        IncidentLink.objects.create(incident=incident, conversation=conversation)
        suggestion = AdvocateSuggestion.objects.create(contact=contact)
    return {
        "conversation_id": conversation.pk,
        "contact_id": contact.pk,
        "message_id": message.pk,
        "account_id": channel.pk,
        "reply_id": saved.pk,
        "brand_id": brand.pk,
        "pool_id": pool.pk,
        "incident_id": incident.pk,
        "suggestion_id": suggestion.pk,
    }


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_ends_in_a_server_error(
    case: Any,
    tenant: Tenant,
    owner_token: str,
    real_ids: dict[str, int],
    wsgi_app: Any,
) -> None:
    parameters = case.path_parameters or {}
    for name in parameters:
        if name == "tenant_slug":
            parameters[name] = tenant.slug
        elif name in real_ids:
            parameters[name] = real_ids[name]
    case.call_and_validate(
        headers={"Authorization": f"Bearer {owner_token}"},
        checks=[not_a_server_error],
    )


def test_the_docs_page_serves_swagger_ui_from_this_server(client: Any) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in (
        response.content
    )
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
