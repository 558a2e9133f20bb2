"""The gates to one connected account and one listening rule (404 for others)."""

from django.http import Http404

from social.models import ListeningRule, SocialAccount
from tenants.models import Membership


def access_social_account(membership: Membership, account_id: int) -> SocialAccount:
    """An account of the member's workspace (with its brand), or 404.

    Call inside the workspace's tenant context. Any member passes; actions check
    their own role.
    """
    account = (
        SocialAccount.objects.select_related("brand").filter(pk=account_id).first()
    )
    if account is None:
        raise Http404("No such account")
    if account.tenant_id != membership.tenant_id:
        raise Http404("No such account")
    return account


def access_listening_rule(membership: Membership, rule_id: int) -> ListeningRule:
    """A listening rule of the member's workspace (with its brand), or 404.

    Any member passes; the listening-rule services require the admin role.
    """
    rule = ListeningRule.objects.select_related("brand").filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such listening rule")
    if rule.tenant_id != membership.tenant_id:
        raise Http404("No such listening rule")
    return rule
