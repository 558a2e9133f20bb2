"""The Sandbox network's own tables: a tiny social network, global (not tenant data).

It stands in for a real platform: Earshot reaches it only over HTTP, through the
Sandbox connector, and never reads these tables.
"""

import re
import secrets
from typing import Any, ClassVar

from django.db import models
from django.utils.timezone import now

MENTION = re.compile(r"@([A-Za-z0-9_]{2,30})")


def new_secret() -> str:
    return secrets.token_urlsafe(24)


class Person(models.Model):
    handle = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=80)
    followers = models.PositiveIntegerField(default=0)
    is_brand = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["handle"]

    def __str__(self) -> str:
        return f"@{self.handle}"


class Post(models.Model):
    author = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="posts")
    text = models.TextField()
    in_reply_to = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies"
    )
    root = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    mentions = models.JSONField(default=list)
    language = models.CharField(max_length=8, blank=True)
    idempotency_key = models.CharField(max_length=64, blank=True)
    # How many times the key was replayed after the first publish: the network
    # dedupes, so this is what shows a client that sent the same post twice.
    replays = models.PositiveIntegerField(default=0)
    # How far the post spread: people who reposted or liked it (counters, as the
    # network shows them; the API's engagement lookup reads them with the replies).
    reposts = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["author", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="sandbox_post_idempotency_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

    @staticmethod
    def mentions_in(text: str) -> list[str]:
        return sorted({handle.lower() for handle in MENTION.findall(text)})


class Message(models.Model):
    sender = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="sent")
    recipient = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="received"
    )
    text = models.TextField()
    idempotency_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at"]

    def __str__(self) -> str:
        return f"{self.sender} → {self.recipient}"

    @property
    def thread(self) -> str:
        """The private conversation id: the two people, in a stable order."""
        low, high = sorted((self.sender_id, self.recipient_id))
        return f"dm-{low}-{high}"


class App(models.Model):
    """A third-party app (Earshot) registered with the Sandbox."""

    name = models.CharField(max_length=80)
    client_id = models.CharField(max_length=64, unique=True)
    client_secret = models.CharField(max_length=128, default=new_secret)
    redirect_uris = models.TextField(blank=True, help_text="One per line.")
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=128, default=new_secret)

    def __str__(self) -> str:
        return self.name


class Grant(models.Model):
    """An account (a brand's Person) that authorized an App."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="grants")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="grants")
    access_token = models.CharField(max_length=64, unique=True, default=new_secret)
    refresh_token = models.CharField(max_length=64, unique=True, default=new_secret)
    expires_at = models.DateTimeField()
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.person} for {self.app}"


class AuthCode(models.Model):
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=64, unique=True, default=new_secret)
    redirect_uri = models.URLField()
    code_challenge = models.CharField(max_length=128)
    expires_at = models.DateTimeField()
    used = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"code for {self.person}"


class Outage(models.Model):
    """The network's fault switch (the fault suite, an operator's drill): until
    `until`, every API call is refused as `mode` says. One row at most (pk 1);
    social.sandbox.outage reads and writes it."""

    class Mode(models.TextChoices):
        RATE_LIMITED = "429", "429 Too Many Requests, with Retry-After"
        SERVER_ERROR = "5xx", "500/502/503, without Retry-After"
        MIXED = "mixed", "429 and 5xx mixed (some 503s carry an HTTP-date)"

    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.MIXED)
    retry_after = models.PositiveIntegerField(
        default=30, help_text="Seconds a 429 (or a dated 503) asks clients to wait."
    )
    started_at = models.DateTimeField(default=now)
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.get_mode_display()} until {self.until:%H:%M:%S}"


class OutageHit(models.Model):
    """One API call the switch refused: what the fault suite reads to see whether
    clients backed off (no call of a grant before the Retry-After it was given)."""

    at = models.DateTimeField(default=now)
    grant_id = models.BigIntegerField(null=True)
    path = models.CharField(max_length=120)
    status = models.PositiveSmallIntegerField()
    retry_after = models.FloatField(null=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["at"]

    def __str__(self) -> str:
        return f"{self.status} {self.path} at {self.at:%H:%M:%S.%f}"
