"""Typed request for views that run inside a tenant."""

from django.http import HttpRequest

from tenants.models import Membership, Tenant, User


class TenantRequest(HttpRequest):
    tenant: Tenant
    membership: Membership
    user: User
