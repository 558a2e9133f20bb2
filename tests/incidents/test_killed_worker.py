"""An incident update whose worker is killed mid-run resumes, and every customer is
answered exactly once (R13, invariant 3): a real `celery worker` process on a
Redis broker is SIGKILLed inside a recipient's transaction, right after its
post_reply; a healthy worker picks the update up from the sweep."""

import os
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from helpdesk.celery import app as celery_app
from helpdesk.models import Conversation, Message
from incidents import updates
from incidents.models import Incident, IncidentUpdate, UpdateRecipient
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.live import ROOT, real_broker, worker_subprocess
from tests.incidents.conftest import CustomerFactory, link, member
from tests.redis_dbs import redis_url

pytestmark = pytest.mark.django_db(transaction=True)

# The broker: this helper's own Redis database (the browser pair's broker, not
# used at the same time), emptied first.
BROKER = redis_url("scratch")
WORKER = """
import json, os, pathlib, signal, sys
from datetime import timedelta
import django
django.setup()
from social.connectors import register_connector
from tests.helpdesk.fakes import FileConnector
FileConnector.path = pathlib.Path(os.environ["EARSHOT_FILE_CONNECTOR"])
register_connector(FileConnector)
from incidents import updates
updates.DEFAULT_PACE = (3, 0.2)
updates.SWEEP_AFTER = timedelta(0)
die_at = int(os.environ["EARSHOT_DIE_AT"])
real = updates.post_reply
calls = []
def post_reply(conversation, **kwargs):
    outcome = real(conversation, **kwargs)
    calls.append(conversation.pk)
    if len(calls) == die_at:
        # Inside the recipient's transaction: the reply row is written, not
        # committed. The whole process dies here.
        pathlib.Path(os.environ["EARSHOT_DIED_AT"]).write_text(str(conversation.pk))
        os.kill(os.getpid(), signal.SIGKILL)
    return outcome
updates.post_reply = post_reply
from helpdesk.celery import app
app.worker_main(sys.argv[1:])
"""
DEADLINE = 120.0


def recipient_rows(tenant: Tenant) -> dict[int, tuple[str, str]]:
    with tenant_context(tenant):
        return {
            r.conversation_id: (r.status, r.reason)
            for r in UpdateRecipient.objects.all()
        }


def replies_per_conversation(tenant: Tenant) -> dict[int, int]:
    with tenant_context(tenant):
        counts: dict[int, int] = {}
        for conversation_id in Message.objects.filter(direction="out").values_list(
            "conversation_id", flat=True
        ):
            counts[conversation_id] = counts.get(conversation_id, 0) + 1
        return counts


def stuck(tenant: Tenant, update: IncidentUpdate, log: Path) -> str:
    """What a recovery that ran out of time left behind, for the failure message."""
    with tenant_context(tenant):
        status = IncidentUpdate.objects.get(pk=update.pk).status
        unsent = list(
            Message.objects.filter(
                direction="out", delivery_status__in=["scheduled", "sending"]
            ).values_list("pk", "delivery_status", "send_after", "claimed_at")
        )
    tail = log.read_text(errors="replace").splitlines()[-40:]
    return "\n".join(
        [
            f"update {status}; unsent {unsent}",
            f"recipients {recipient_rows(tenant)}",
            "healthy worker's log:",
            *tail,
        ]
    )


def test_a_killed_worker_resumes_and_answers_each_customer_once(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    incident: Incident,
    customer: CustomerFactory,
    tmp_path: Path,
) -> None:
    with tenant_context(tenant):
        Brand.objects.update(send_hold_seconds=0)
    people = [customer(f"Person {n}") for n in range(10)]
    limited = people[2], people[7]
    with tenant_context(tenant):
        Conversation.objects.filter(pk__in=[c.pk for c in limited]).update(
            public_reply_count=2
        )
    link(tenant, agent, incident, *people)
    platform = tmp_path / "platform.jsonl"
    died_at = tmp_path / "died_at"
    redis.Redis.from_url(BROKER).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": BROKER,
        "EARSHOT_TEST_EAGER": "0",
        "EARSHOT_FILE_CONNECTOR": str(platform),
        "EARSHOT_DIED_AT": str(died_at),
        "PYTHONPATH": str(ROOT),
    }
    with real_broker(BROKER):
        with worker_subprocess(
            {**env, "EARSHOT_DIE_AT": "5"},
            tmp_path / "doomed.log",
            name="incident-doomed",
            script=WORKER,
        ) as doomed:
            with tenant_context(tenant):
                update, created = updates.start_update(
                    member(tenant, agent),
                    incident,
                    text="{greeting} {first_name}, AA31 is cancelled; "
                    "we are rebooking you.",
                    idempotency_key="22222222-2222-2222-2222-222222222222",
                )
            assert created
            doomed.wait(timeout=DEADLINE)
        assert doomed.returncode == -9
        killed = int(died_at.read_text())
        rows = recipient_rows(tenant)
        # The four replies before the kill are committed with their rows; the
        # fifth (its reply written, not committed) rolled back with its claim.
        assert sum(status == "sent" for status, _ in rows.values()) == 4
        assert rows[killed] == ("pending", "")
        assert killed not in replies_per_conversation(tenant)
        healthy_log = tmp_path / "healthy.log"
        with worker_subprocess(
            {**env, "EARSHOT_DIE_AT": "0"},
            healthy_log,
            name="incident-healthy",
            script=WORKER,
        ):
            # What beat does: the sweep finds the stalled update. A duplicate of
            # the update's own task arrives too (a redelivery): no double send.
            celery_app.send_task("incidents.sweep_all_updates")
            celery_app.send_task("incidents.send_update", args=(tenant.pk, update.pk))
            # A delivery task the dead worker had prefetched waits on Redis for its
            # visibility timeout; the outbox sweep hands its reply back (as beat
            # does every 10 s; invariant 3, helpdesk.deliver_message's business).
            # Beat also repeats the incident sweep (every 30 s).
            schedule = settings.CELERY_BEAT_SCHEDULE
            sweeps = {
                "helpdesk.sweep_outboxes": schedule["sweep-outboxes"]["schedule"],
                "incidents.sweep_all_updates": schedule["sweep-incident-updates"][
                    "schedule"
                ],
            }
            recovering = time.monotonic()
            due = dict.fromkeys(sweeps, recovering)
            due["incidents.sweep_all_updates"] += sweeps["incidents.sweep_all_updates"]
            while True:
                now = time.monotonic()
                assert now - recovering < DEADLINE, stuck(tenant, update, healthy_log)
                for task, period in sweeps.items():
                    if now >= due[task]:
                        celery_app.send_task(task)
                        due[task] += period
                with tenant_context(tenant):
                    fresh = IncidentUpdate.objects.get(pk=update.pk)
                    unsent = Message.objects.filter(
                        direction="out", delivery_status__in=["scheduled", "sending"]
                    ).count()
                if fresh.status == "done" and unsent == 0:
                    break
                time.sleep(0.2)
    elapsed = time.monotonic() - recovering
    rows = recipient_rows(tenant)
    skipped = {pk for pk, (status, _) in rows.items() if status == "skipped"}
    assert skipped == {c.pk for c in limited}
    for pk in skipped:
        assert rows[pk][1].startswith("R3: already answered publicly 2 times")
    answered = {c.pk for c in people} - skipped
    assert {pk for pk, (s, _) in rows.items() if s == "sent"} == answered
    assert replies_per_conversation(tenant) == dict.fromkeys(answered, 1)
    # The platform saw each reply once.
    sends = platform.read_text().splitlines()
    assert len(sends) == len(answered) == 8
    with tenant_context(tenant):
        assert updates.update_counts(fresh) == {
            "pending": 0,
            "sent": 8,
            "skipped": 2,
            "failed": 0,
            "total": 10,
        }
    assert elapsed < DEADLINE
