"""ASGI middleware of the server: the request body's size limit, UTF-8 check and JSON parsing."""

from seq2seq_attn.serving.http_errors import error_response


class JsonBodyMiddleware:
    """Pure ASGI middleware for request bodies.

    Refuses bodies over `max_bytes` (413, before reading more than that) and bodies that are
    not UTF-8 (400), and has FastAPI read every body as JSON whatever the Content-Type says
    (`curl -d` sends form encoding; TF Serving ignores the header too). A client that
    disconnects before its body is read gets nothing, and `on_disconnect()` is called.
    """

    def __init__(self, app, max_bytes, on_disconnect=None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_disconnect = on_disconnect

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_bytes:
            await self._refuse(scope, receive, send, 413, "body_too_large", declared)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self.on_disconnect is not None:
                    self.on_disconnect()
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send, 413, "body_too_large", len(body))
                return
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            response = error_response(
                400, "invalid_utf8", f"request body is not valid UTF-8 (byte {error.start})"
            )
            await response(scope, receive, send)
            return
        headers[b"content-type"] = b"application/json"
        scope["headers"] = list(headers.items())  # in place: the router notes scope["route"]
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, status, code, size):
        message = f"request body is {size} bytes; the limit is {self.max_bytes}"
        response = error_response(status, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)
