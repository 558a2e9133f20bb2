"""Celery tasks are tenant tasks or allowlisted, and fail closed (tenancy.md 20-21)."""

import inspect

import pytest
from django.core import mail

from helpdesk.celery import app
from tenants.context import tenant_context
from tenants.exceptions import TenantContextMissing
from tenants.models import Invitation, Membership, Tenant
from tenants.services import invite_member
from tenants.tasks import (
    SYSTEM_TASKS,
    TENANT_TASK_ATTR,
    send_invitation_email,
    tenant_task,
)
from tests.factories import membership_of

pytestmark = pytest.mark.django_db


def test_every_celery_task_is_tenant_or_allowlisted() -> None:
    app.loader.import_default_modules()
    ours = {
        name: task for name, task in app.tasks.items() if not name.startswith("celery.")
    }
    assert "tenants.send_invitation_email" in ours
    for name, task in ours.items():
        if name in SYSTEM_TASKS:
            continue
        assert getattr(task.run, TENANT_TASK_ATTR, False), name
        params = list(inspect.signature(task.run, follow_wrapped=False).parameters)
        assert params[int(params[0] == "task")] == "tenant_id", name


def test_task_body_without_a_tenant_fails_closed(tenant: Tenant) -> None:
    @tenant_task(name="tests.count_brands")
    def count_brands(tenant: Tenant) -> int:
        from tenants.models import Brand

        return Brand.objects.count()

    with pytest.raises(TenantContextMissing):
        count_brands.run.__wrapped__(tenant)
    assert count_brands.run(tenant.pk) == 1
    app.tasks.unregister("tests.count_brands")


def test_task_for_one_tenant_cannot_reach_anothers_rows(
    owner: object, tenant: Tenant, other_tenant: Tenant
) -> None:
    with tenant_context(tenant):
        invitation = invite_member(
            membership_of(tenant, owner),  # type: ignore[arg-type]
            email="nina@acme.example",
            role=Membership.Role.AGENT,
        )
    mail.outbox.clear()
    send_invitation_email.run(other_tenant.pk, invitation.pk)
    assert mail.outbox == []
    send_invitation_email.run(tenant.pk, invitation.pk)
    assert [m.to for m in mail.outbox] == [["nina@acme.example"]]


def test_task_for_a_suspended_tenant_is_skipped(owner: object, tenant: Tenant) -> None:
    with tenant_context(tenant):
        invitation = Invitation.objects.create(
            tenant=tenant, email="x@acme.example", expires_at="2999-01-01T00:00Z"
        )
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert send_invitation_email.run(tenant.pk, invitation.pk) is None
    assert mail.outbox == []
