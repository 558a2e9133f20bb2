"""Applying a workspace's listening rules to untagged public items (R1), and the
keyword-search terms they imply for platforms that must be searched.

The rules of one tenant are compiled into one matcher and cached per process; the
cache key is the rules' count and latest change, read with one small query.
"""

from functools import lru_cache

from django.db.models import Count, Max, Q

from social.connectors.base import InboundItem
from social.listening import Matcher, Post, Rule, RuleMatch, compile_rules
from social.listening.terms import search_terms
from social.models import ListeningRule, SocialAccount


def _rule(rule: ListeningRule) -> Rule:
    return Rule(
        id=rule.pk,
        brand_id=rule.brand_id,
        query=rule.query,
        platforms=frozenset(rule.platforms) if rule.platforms else None,
        action="competitor" if rule.competitor else rule.action,  # type: ignore[arg-type]
        variants=rule.variants or {},
    )


@lru_cache(maxsize=256)
def _compiled(tenant_id: int, version: tuple[int, str]) -> Matcher:
    return compile_rules([_rule(r) for r in ListeningRule.objects.filter(enabled=True)])


def tenant_matcher(tenant_id: int) -> Matcher:
    """The open tenant's compiled matcher (rebuilt when its rules change)."""
    stats = ListeningRule.objects.filter(enabled=True).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    return _compiled(tenant_id, (int(stats["n"]), str(stats["last"])))


def listening_matches(account: SocialAccount, item: InboundItem) -> list[RuleMatch]:
    """The account's brand's rules that match an untagged public item."""
    post = Post(
        text=item.text,
        author_handle=item.author.handle,
        language=item.language,
        platform=item.platform,
        author_is_brand=_is_account(account, item),
    )
    return [
        match
        for match in tenant_matcher(account.tenant_id).match(post)
        if match.brand_id == account.brand_id
    ]


def _is_account(account: SocialAccount, item: InboundItem) -> bool:
    # Some platforms identify authors by handle, not by the id the account was
    # connected with (Reddit: username vs t2_ fullname), so either one counts.
    author = item.author
    if author.external_id == account.external_id:
        return True
    return bool(author.handle) and author.handle.lower() == account.handle.lower()


def brand_search_terms(account: SocialAccount) -> list[str]:
    """Keyword-search terms for the account's brand on its platform (R1).

    From the brand's enabled inbox and competitor rules, oldest first
    (`social.listening.terms` documents the derivation and the term syntax). Call
    inside the account's tenant context. Empty when no rule applies.
    """
    rules = (
        ListeningRule.objects.filter(brand_id=account.brand_id, enabled=True)
        .filter(Q(action=ListeningRule.Action.INBOX) | Q(competitor=True))
        .order_by("pk")
    )
    return search_terms([_rule(rule) for rule in rules], account.platform)
