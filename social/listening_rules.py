"""Applying a workspace's listening rules to untagged public items (R1).

The rules of one tenant are compiled into one matcher and cached per process; the
cache key is the rules' count and latest change, read with one small query.
"""

from functools import lru_cache

from django.db.models import Count, Max

from social.connectors.base import InboundItem
from social.listening import Matcher, Post, Rule, RuleMatch, compile_rules
from social.models import ListeningRule, SocialAccount


@lru_cache(maxsize=256)
def _compiled(tenant_id: int, version: tuple[int, str]) -> Matcher:
    rules = [
        Rule(
            id=rule.pk,
            brand_id=rule.brand_id,
            query=rule.query,
            platforms=frozenset(rule.platforms) if rule.platforms else None,
            action=rule.action,  # type: ignore[arg-type]
            variants=rule.variants or {},
        )
        for rule in ListeningRule.objects.filter(enabled=True)
    ]
    return compile_rules(rules)


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
        author_is_brand=item.author.external_id == account.external_id,
    )
    return [
        match
        for match in tenant_matcher(account.tenant_id).match(post)
        if match.brand_id == account.brand_id
    ]
