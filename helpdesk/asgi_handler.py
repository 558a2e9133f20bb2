"""Django's ASGI handler with one hop to a reused thread per request.

Every middleware of the project is synchronous, and so are the views. Django's
`ASGIHandler` still builds an async middleware chain: the request crosses from the
event loop to a thread for the middleware, back to the loop for URL resolution,
to the thread again for the view, back, and once more for each of the
`request_started` and `request_finished` signals; and `ThreadSensitiveContext()`
starts a new thread for every request. Measured in process on the 2-core bench
machine (scripts/peer_profile.py), that was 3.1-3.6 ms of CPU for the ping
endpoint against 1.0 ms through the WSGI handler.

`SyncASGIHandler` loads the middleware in synchronous mode (as the WSGI handler
does) and runs the request in one call on its own thread: `request_started`,
building the request, the middleware and the view and, when the body is already
in memory, `response.close()` (so `request_finished` returns the database
connection before the bytes are sent rather than after). A streamed body is
produced and closed on that same thread afterwards, as under `ASGIHandler`
(helpdesk/streaming.py relies on it). The request is Django's `ASGIRequest` and
the answer goes out through Django's `send_response`: clients receive the same
bytes (tests/helpdesk/test_asgi_handler.py compares them).

The thread comes from a list of one-thread executors that outlive their requests
(`ThreadSensitiveContext(executor=...)`), so no thread is started per request; a
request still has a thread to itself from its first line to its last, and its
database connection (per context, as under `ASGIHandler`) never crosses threads.
`async_to_sync` in a view still runs on the server's event loop. Django's
handler also listens for the client's disconnect, which can only cancel async
views; a synchronous view runs to its end either way.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class RequestThreads:
    """One-thread executors handed to one request at a time and then reused.

    Starting a thread per request (what `ThreadSensitiveContext()` does) cost
    about 0.8 ms of CPU per request on the bench machine. Used only from the event
    loop's thread, so a list is enough. There is no limit on requests in flight
    (as with Django's handler); at most `keep` idle threads are kept.
    """

    def __init__(self, *, keep: int) -> None:
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="earshot-request")

    def give(self, executor: ThreadPoolExecutor) -> None:
        if len(self.idle) < self.keep:
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)


class SyncASGIHandler(ASGIHandler):
    """ASGIHandler for a project whose middleware and views are all synchronous."""

    def __init__(self, *, threads: int) -> None:
        # BaseHandler only: ASGIHandler.__init__ would load the async chain.
        super(ASGIHandler, self).__init__()
        self.load_middleware(is_async=False)
        self.threads = RequestThreads(keep=threads)
        self.serve = sync_to_async(self.serve_sync, thread_sensitive=True)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(
                f"Django can only handle ASGI/HTTP connections, not {scope['type']}."
            )
        executor = self.threads.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except asyncio.CancelledError:
            # The thread may still be running this request's view: not reused.
            executor.shutdown(wait=False)
            raise
        except BaseException:
            self.threads.give(executor)
            raise
        self.threads.give(executor)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response, closed = await self.serve(scope, body_file)
        finally:
            body_file.close()
        await self.send_response(response, send)
        if not closed:
            await sync_to_async(response.close)()

    def serve_sync(self, scope: Any, body_file: Any) -> tuple[HttpResponseBase, bool]:
        """The response to one request, and whether it is already closed."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            response = cast(HttpResponseBase, error_response)
        else:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if response.streaming:
            return response, False
        # The body is bytes already: sending needs nothing the close releases.
        response.close()
        return response, True


def get_asgi_application() -> SyncASGIHandler:
    """`django.core.asgi.get_asgi_application` with this handler."""
    django.setup(set_prefix=False)
    # ASGI_THREADS comes from helpdesk/settings.py; the default keeps a settings
    # module without it (an older checkout's) serving.
    return SyncASGIHandler(threads=getattr(settings, "ASGI_THREADS", 16))
