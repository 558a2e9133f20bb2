"""CPU of a token reply in this process, with the row lock in the opening
statement and without it (the lock in a statement of its own, as before),
alternating in blocks in one process so both see the same machine.

One request at a time through Django's test client, as tests/perf/
test_write_path.py; each reply answers a new API-channel conversation.

    EARSHOT_AB_PAIRS=8 EARSHOT_AB_REPLIES=40 \
        pytest tests/helpdesk/test_reply_opening_ab.py -m bench -s
"""

import os
import statistics
import sys
import time
from typing import Any

import pytest

import tenants.middleware
from tenants.api_auth import ApiRateThrottle
from tenants.models import Tenant, User
from tests.api_clients import base, open_api_channel, push, token_client
from tests.statements import count_statements

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

PAIRS = int(os.environ.get("EARSHOT_AB_PAIRS", "8"))
REPLIES = int(os.environ.get("EARSHOT_AB_REPLIES", "40"))


def test_reply_cpu_with_and_without_the_lateral(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More requests than the API's rate limit allows a token in a minute.
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", {"api": "1000000/min"})
    client = token_client(tenant, owner, "admin")
    channel = open_api_channel(tenant, owner)
    count = (2 * PAIRS + 2) * (REPLIES + 1)
    conversations = [
        push(client, tenant, channel, n).json()["conversation_id"] for n in range(count)
    ]
    lateral = tenants.middleware._lateral
    url = f"{base(tenant)}/conversations/{{}}/messages/"
    taken = iter(conversations)

    def block(with_lateral: bool) -> tuple[float, int]:
        monkeypatch.setattr(
            tenants.middleware,
            "_lateral",
            lateral if with_lateral else (lambda request: None),
        )
        start = time.process_time()
        for n in range(REPLIES):
            response = client.post(
                url.format(next(taken)), {"text": f"On it ({n})."}, format="json"
            )
            assert response.status_code == 201, response.content
        cpu = (time.process_time() - start) / REPLIES
        with count_statements() as seen:
            response = client.post(
                url.format(next(taken)), {"text": "Done."}, format="json"
            )
        assert response.status_code == 201, response.content
        return cpu, len(seen)

    block(True)  # warm both paths
    block(False)
    pairs: list[tuple[float, float]] = []
    statements: set[tuple[int, int]] = set()
    for _ in range(PAIRS):
        without, old_count = block(False)
        with_it, new_count = block(True)
        pairs.append((without * 1000, with_it * 1000))
        statements.add((old_count, new_count))
    lines: list[Any] = [
        f"pair {n}: without {a:.3f} ms, with {b:.3f} ms, {b - a:+.3f} ms"
        for n, (a, b) in enumerate(pairs, 1)
    ]
    summary = (
        f"median without {statistics.median(a for a, _ in pairs):.3f} ms,"
        f" with {statistics.median(b for _, b in pairs):.3f} ms;"
        f" with wins {sum(b < a for a, b in pairs)} of {len(pairs)};"
        f" statements of a reply (without, with): {sorted(statements)};"
        f" load {os.getloadavg()}"
    )
    sys.stdout.write("\n".join([*lines, summary]) + "\n")
