"""Streamed downloads that read a tenant's rows while they are sent.

A tenant's queries need its context open (`tenant_context`: the ContextVar the
fail-closed managers read, and the transaction that carries `SET LOCAL
app.tenant_id`). A streamed body is produced after the view has returned and the
middleware has closed that context, so the body's generator opens the context
itself and keeps it open until the last row is out (a server-side cursor lives
in that transaction).

Under WSGI Django iterates the generator directly. Under ASGI (uvicorn, how
Earshot runs) Django would first collect a synchronous iterator into a list,
which is exactly what a year of rows must not do; `TenantStreamingResponse`
instead pulls one chunk at a time on the request's sync thread, always in the
same `contextvars.Context`, so the transaction, its connection and the tenant
ContextVar stay with the generator from first chunk to last.
"""

import contextvars
from collections.abc import AsyncIterator, Callable, Iterator

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

from tenants.context import tenant_context
from tenants.models import Tenant

_DONE = object()


def in_tenant(tenant: Tenant, produce: Callable[[], Iterator[str]]) -> Iterator[str]:
    """Yield what `produce()` yields, with `tenant`'s context open around all of it.

    Nothing runs (no query, no context) until the first chunk is asked for.
    """
    with tenant_context(tenant):
        yield from produce()


class TenantStreamingResponse(StreamingHttpResponse):
    """A StreamingHttpResponse over a synchronous generator that is also streamed,
    chunk by chunk, under ASGI (see the module docstring)."""

    def __init__(self, content: Iterator[str], **kwargs: object) -> None:
        super().__init__(content, **kwargs)
        self._source = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        context = contextvars.copy_context()

        def step() -> object:
            return context.run(next, self._source, _DONE)

        def close() -> None:
            close_source = getattr(self._source, "close", None)
            if close_source is not None:
                context.run(close_source)

        try:
            while True:
                chunk = await sync_to_async(step)()
                if chunk is _DONE:
                    break
                yield self.make_bytes(chunk)
        finally:
            # A client that went away leaves the generator open: end its
            # transaction on the thread and in the context it began in.
            await sync_to_async(close)()
