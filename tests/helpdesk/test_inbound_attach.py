"""_attach: the conversation's brand and account as the descriptors set them."""

from helpdesk.models import Conversation
from helpdesk.services.inbound import _attach
from social.models import SocialAccount
from tenants.models import Brand


def _rows(brand_id: int) -> tuple[Conversation, SocialAccount, Brand]:
    brand = Brand(pk=7, name="Shop")
    brand._state.db = "default"
    account = SocialAccount(pk=3, brand_id=7)
    account._state.db = "default"
    SocialAccount.brand.field.set_cached_value(account, brand)
    conversation = Conversation(pk=11, brand_id=brand_id, social_account_id=3)
    conversation._state.db = "default"
    return conversation, account, brand


def test_a_conversation_of_the_accounts_brand_gets_both_rows_cached() -> None:
    conversation, account, brand = _rows(brand_id=7)

    _attach(conversation, account)

    assert conversation.brand is brand
    assert conversation.social_account is account
    assert (conversation.brand_id, conversation.social_account_id) == (7, 3)


def test_a_conversation_of_another_brand_takes_the_accounts_as_before() -> None:
    """The descriptors' own assignment: the key changes with the row."""
    conversation, account, brand = _rows(brand_id=8)

    _attach(conversation, account)

    assert conversation.brand is brand
    assert conversation.brand_id == 7
    assert conversation.social_account is account
