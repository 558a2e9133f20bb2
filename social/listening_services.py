"""Managing listening rules (R1), and trying a query on a sample post.

Rules are workspace configuration: admins create, change and delete them. Every
write sets `updated_at`, which is part of the compiled matcher's cache key
(`social.listening_rules.tenant_matcher`), so the next ingested post uses the change.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from django.core.exceptions import ValidationError
from django.utils.timezone import now

from social.listening import (
    Post,
    QuerySyntaxError,
    Rule,
    RuleError,
    compile_rules,
    parse_query,
)
from social.listening.evaluate import literal_keys
from social.listening.text import stream_of, words_of
from social.models import ListeningRule, Platform
from tenants.access import require_role
from tenants.models import Brand, Membership


class ListeningRuleChanges(TypedDict, total=False):
    """What `update_listening_rule` changes; a key left out stays as it is."""

    brand: Brand
    name: str
    query: str
    platforms: list[str]
    variants: dict[str, list[str]]
    action: str
    enabled: bool
    competitor: bool


@dataclass(frozen=True)
class QueryTrial:
    """Whether a query matches a sample post, and which of its terms occur in it."""

    matches: bool
    terms: list[str]


def _check_rule(values: Mapping[str, Any]) -> None:
    """Raise ValidationError, per field, unless the rule's values are usable."""
    errors: dict[str, list[str]] = {}
    if "name" in values and not values["name"]:
        errors["name"] = ["Give the rule a name."]
    if "action" in values and values["action"] not in ListeningRule.Action.values:
        errors["action"] = [f"Choose one of {', '.join(ListeningRule.Action.values)}."]
    unknown = set(values.get("platforms", [])) - set(Platform.values)
    if unknown:
        errors["platforms"] = [f"Unknown platforms: {', '.join(sorted(unknown))}."]
    if "query" in values:
        try:
            parse_query(values["query"], values.get("variants") or {})
        except RuleError as error:
            errors.update(_rule_error(error))
    if values.get("competitor") and values.get("action") != ListeningRule.Action.FEED:
        errors["competitor"] = [
            "A competitor rule's matches go to the competitor feed, never the "
            'inbox: choose "Feed only".'
        ]
    if errors:
        raise ValidationError(errors)


def _rule_error(error: RuleError) -> dict[str, list[str]]:
    # A syntax error carries its position in str(); other rule errors are about
    # the variants (see parse_query).
    if isinstance(error, QuerySyntaxError):
        return {"query": [str(error)]}
    return {"variants": [error.message]}


def create_listening_rule(
    membership: Membership,
    *,
    brand: Brand,
    name: str,
    query: str,
    platforms: Sequence[str] = (),
    variants: Mapping[str, list[str]] | None = None,
    action: str = ListeningRule.Action.INBOX,
    enabled: bool = True,
    competitor: bool = False,
) -> ListeningRule:
    """Add a listening rule to `brand` (of the member's workspace). Admins only.

    `platforms` empty means every platform. Raises ValidationError per field: a
    malformed or too broad query (the message names the character position),
    variants without words, an unknown platform or action, a blank name, a
    competitor rule whose action is not "feed".
    """
    require_role(membership, Membership.Role.ADMIN)
    values = {
        "name": name.strip(),
        "query": query,
        "platforms": list(dict.fromkeys(platforms)),
        "variants": dict(variants or {}),
        "action": action,
        "competitor": competitor,
    }
    _check_rule(values)
    return ListeningRule.objects.create(
        tenant=membership.tenant,
        brand=brand,
        enabled=enabled,
        updated_at=now(),
        **values,
    )


def update_listening_rule(
    membership: Membership, rule: ListeningRule, *, changes: ListeningRuleChanges
) -> ListeningRule:
    """Change a listening rule. Admins only.

    The query is checked again with the resulting variants whenever either
    changes. Raises ValidationError per field (as `create_listening_rule`) and
    changes nothing then.
    """
    require_role(membership, Membership.Role.ADMIN)
    values: dict[str, Any] = dict(changes)
    if "name" in values:
        values["name"] = str(values["name"]).strip()
    if "platforms" in values:
        values["platforms"] = list(dict.fromkeys(values["platforms"]))
    if "query" in values or "variants" in values:
        values.setdefault("query", rule.query)
        values.setdefault("variants", rule.variants)
    if "competitor" in values or "action" in values:
        values.setdefault("competitor", rule.competitor)
        values.setdefault("action", rule.action)
    _check_rule(values)
    changed = [key for key, value in values.items() if getattr(rule, key) != value]
    if not changed:
        return rule
    for key in changed:
        setattr(rule, key, values[key])
    rule.updated_at = now()
    rule.save(update_fields=[*changed, "updated_at"])
    return rule


def delete_listening_rule(membership: Membership, rule: ListeningRule) -> None:
    """Delete a listening rule. Admins only. Conversations it created stay."""
    require_role(membership, Membership.Role.ADMIN)
    rule.delete()


def try_listening_query(
    query: str,
    *,
    text: str,
    platform: str = "",
    author: str = "",
    language: str = "",
    variants: Mapping[str, list[str]] | None = None,
) -> QueryTrial:
    """Match `query` against one sample post, as ingestion would.

    `terms` lists the query's words, phrases, #tags and @handles (folded, as the
    matcher reads them) that occur in the text, excluded ones included, so a
    non-match can be explained. Raises ValidationError on `query` or `variants`
    when the query cannot be compiled. Reads and writes nothing.
    """
    try:
        tree = parse_query(query, variants or {})
    except RuleError as error:
        raise ValidationError(_rule_error(error)) from None
    matcher = compile_rules(
        [Rule(id=0, brand_id=0, query=query, variants=dict(variants or {}))]
    )
    post = Post(text=text, author_handle=author, language=language, platform=platform)
    stream = stream_of(words_of(text))
    found = {key.strip() for key in literal_keys(tree) if key in stream}
    return QueryTrial(matches=bool(matcher.match(post)), terms=sorted(found))
