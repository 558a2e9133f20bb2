"""Plain factory functions for tests. They open the tenant context they need."""

import itertools

from tenants.context import tenant_context
from tenants.models import Brand, Invitation, Membership, Tenant, User
from tenants.services import create_workspace

PASSWORD = "correct-horse-battery-staple"
_seq = itertools.count(1)


def make_user(email: str | None = None, **extra: object) -> User:
    email = email or f"user{next(_seq)}@example.com"
    return User.objects.create_user(email, PASSWORD, **extra)


def make_workspace(name: str, *, owner: User | None = None) -> Tenant:
    owner = owner or make_user()
    return create_workspace(owner=owner, name=name).tenant


def add_member(tenant: Tenant, user: User, role: str) -> Membership:
    with tenant_context(tenant):
        return Membership.objects.create(tenant=tenant, user=user, role=role)


def membership_of(tenant: Tenant, user: User) -> Membership:
    with tenant_context(tenant):
        membership = Membership.objects.select_related("user").get(user=user)
    membership.tenant = tenant
    return membership


def make_brand(tenant: Tenant, name: str) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.create(tenant=tenant, name=name, slug=name.lower())


def count_rows(tenant: Tenant, model: type[Brand | Membership | Invitation]) -> int:
    with tenant_context(tenant):
        return model.objects.count()
