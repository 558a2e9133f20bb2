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
the answer goes out through Django's `send_response` (a body in memory through a
shorter copy of it, and a whole small body read into a `BytesIO`): clients receive
the same bytes (tests/helpdesk/test_asgi_handler.py compares them).

The thread comes from a list of request threads that outlive their requests, so
no thread is started per request; a request still has a thread to itself from its
first line to its last, and its database connection (per context, as under
`ASGIHandler`) never crosses threads. The hop there and back is a queue put and a
`call_soon_threadsafe`, with what `sync_to_async` does around a call kept (the
context copied and brought back, `async_to_sync` in a view still running on the
server's event loop); `sync_to_async`'s own executor future, chained to an
asyncio future and shielded, and a `ThreadSensitiveContext` around every request
cost about 0.1 ms of CPU per request more on the bench machine. A streamed body
alone runs in a `ThreadSensitiveContext` with the request's thread as its
executor, so its chunks come from that thread. Django's
handler also listens for the client's disconnect, which can only cancel async
views; a synchronous view runs to its end either way.
"""

import asyncio
import contextlib
import contextvars
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any, cast

import django
from asgiref.sync import (
    SyncToAsync,
    ThreadSensitiveContext,
    _restore_context,
    sync_to_async,
)
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.http.response import ResponseHeaders
from django.urls import set_script_prefix


class RequestThread(Executor):
    """One thread that runs the calls given to it, one after another.

    `run_soon(call)` is the request's hop: a queue put, no `Future`. As an
    `Executor` (`submit`) it also serves `ThreadSensitiveContext`, for the rare
    thread-sensitive calls made from the event loop (a streamed body).
    """

    def __init__(self) -> None:
        self._calls: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        self._shutdown = False
        # A daemon, so that an idle one does not hold the process at exit (the
        # server stops once its requests in flight are answered).
        self._thread = threading.Thread(
            target=self._work, name="earshot-request", daemon=True
        )
        self._thread.start()

    def _work(self) -> None:
        calls = self._calls
        while (call := calls.get()) is not None:
            call()
            del call

    def run_soon(self, call: Callable[[], None]) -> None:
        """Run `call` on this thread after the calls given before it."""
        if self._shutdown:
            raise RuntimeError("cannot run calls on a thread that was shut down")
        self._calls.put(call)

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        future: Future[Any] = Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(result)

        self.run_soon(call)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the thread once the calls given so far have run."""
        if not self._shutdown:
            self._shutdown = True
            self._calls.put(None)
        if wait:
            self._thread.join()


class RequestThreads:
    """Request threads handed to one request at a time and then reused.

    Starting a thread per request (what `ThreadSensitiveContext()` does) cost
    about 0.8 ms of CPU per request on the bench machine. Used only from the event
    loop's thread, so a list is enough. There is no limit on requests in flight
    (as with Django's handler); at most `keep` idle threads are kept.
    """

    def __init__(self, *, keep: int) -> None:
        self.keep = keep
        self.idle: list[RequestThread] = []

    def take(self) -> RequestThread:
        if self.idle:
            return self.idle.pop()
        return RequestThread()

    def give(self, thread: RequestThread) -> None:
        if len(self.idle) < self.keep:
            self.idle.append(thread)
        else:
            thread.shutdown(wait=False)


class SyncASGIHandler(ASGIHandler):
    """ASGIHandler for a project whose middleware and views are all synchronous."""

    def __init__(self, *, threads: int) -> None:
        # BaseHandler only: ASGIHandler.__init__ would load the async chain.
        super(ASGIHandler, self).__init__()
        self.load_middleware(is_async=False)
        self.threads = RequestThreads(keep=threads)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(
                f"Django can only handle ASGI/HTTP connections, not {scope['type']}."
            )
        thread = self.threads.take()
        try:
            await self.handle(scope, receive, send, thread)
        except asyncio.CancelledError:
            # The thread may still be running this request's view: not reused.
            thread.shutdown(wait=False)
            raise
        except BaseException:
            self.threads.give(thread)
            raise
        self.threads.give(thread)

    async def handle(  # type: ignore[override]
        self, scope: Any, receive: Any, send: Any, thread: RequestThread
    ) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response, closed = await self.serve(thread, scope, body_file)
        finally:
            body_file.close()
        if closed:
            await self.send_response(response, send)
            return
        # A streamed body: produced and closed on the view's thread.
        async with ThreadSensitiveContext(executor=thread):
            await self.send_response(response, send)
            await sync_to_async(response.close)()

    async def serve(
        self, thread: RequestThread, scope: Any, body_file: Any
    ) -> tuple[HttpResponseBase, bool]:
        """`serve_sync` on `thread`, as `sync_to_async` runs a call: in a copy of
        this context (Local storage re-homed there, the changes brought back), with
        `async_to_sync` in the view reaching this loop, and its tasks cancelled
        with the request. One queue put and one `call_soon_threadsafe` instead of
        an executor's futures chained to the loop's."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[HttpResponseBase, bool]] = loop.create_future()
        context = contextvars.copy_context()
        tasks: list[asyncio.Task[Any]] = []

        def run() -> tuple[HttpResponseBase, bool]:
            _restore_context(context)
            return self.serve_sync(scope, body_file)

        def call() -> None:
            local = SyncToAsync.threadlocal
            local.main_event_loop = loop
            local.main_event_loop_pid = os.getpid()
            local.task_context = tasks
            try:
                result = context.run(run)
            except BaseException as error:
                _answer(loop, done.set_exception, done, error)
            else:
                _answer(loop, done.set_result, done, result)

        thread.run_soon(call)
        try:
            return await done
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        finally:
            _restore_context(context)

    async def read_body(self, receive: Any) -> Any:
        """Django's, except that a body that comes whole in its first message and
        fits in memory (every API call's) is kept in a `BytesIO` rather than a
        `SpooledTemporaryFile`, which would hold it in one too."""
        message = await receive()
        if message["type"] != "http.disconnect" and not message.get("more_body"):
            body = message.get("body", b"")
            if len(body) <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
                return io.BytesIO(body)
        first: dict[str, Any] | None = message

        async def again() -> Any:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await receive()

        return await super().read_body(again)

    async def send_response(self, response: Any, send: Any) -> None:
        """Django's, with a body in memory sent straight from its headers' store:
        the same messages, without walking the headers through the
        case-insensitive mapping's views and the body through `chunk_bytes`."""
        if response.streaming or type(response.headers) is not ResponseHeaders:
            await super().send_response(response, send)
            return
        headers = [
            (
                bytes(name.encode("ascii") if isinstance(name, str) else name),
                bytes(value.encode("latin1") if isinstance(value, str) else value),
            )
            for name, value in response.headers._store.values()
        ]
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.OutputString().encode("ascii")))
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": headers,
            }
        )
        content = response.content
        if len(content) <= self.chunk_size:
            await send(
                {"type": "http.response.body", "body": content, "more_body": False}
            )
            return
        for chunk, last in self.chunk_bytes(content):
            await send(
                {"type": "http.response.body", "body": chunk, "more_body": not last}
            )

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


def _answer(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[Any], None],
    done: "asyncio.Future[Any]",
    value: Any,
) -> None:
    """From the request's thread: settle `done` on its loop, unless the request
    was cancelled meanwhile (or the loop is gone)."""

    def settle_if_waited() -> None:
        if not done.done():
            settle(value)

    # A closed loop raises RuntimeError: nobody waits for this request any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle_if_waited)


def get_asgi_application() -> SyncASGIHandler:
    """`django.core.asgi.get_asgi_application` with this handler."""
    django.setup(set_prefix=False)
    # ASGI_THREADS comes from helpdesk/settings.py; the default keeps a settings
    # module without it (an older checkout's) serving.
    return SyncASGIHandler(threads=getattr(settings, "ASGI_THREADS", 16))
