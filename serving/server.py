"""`seq2seq-attn serve`: the app on uvicorn, with a shutdown that drains before it stops.

On SIGTERM (or SIGINT) the server first reports not ready (`/readyz` 503) for `drain_s`
seconds while it goes on answering, so a load balancer stops sending it traffic; then it
stops accepting connections, lets the requests in flight finish (at most
`shutdown_timeout_s`), stops the decode worker and exits 0. A second signal skips the drain.
"""

import logging
import threading

from seq2seq_attn.errors import UserError
from seq2seq_attn.serving.app import DEFAULT_MODEL_NAME, create_app

logger = logging.getLogger(__name__)


def _draining_server(config, service, drain_s):
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn, but a signal means: not ready, drain, then the usual graceful exit.

        The signal is not raised again after the shutdown (uvicorn does that by default,
        which would end the process with 128 + SIGTERM instead of 0).
        """

        def handle_exit(self, sig, frame):
            if self.should_exit:  # a third signal: stop waiting for the requests in flight
                self.force_exit = True
            if service.draining or drain_s <= 0:
                self.should_exit = True
                return
            service.draining = True
            logger.info("signal %s: not ready; draining for %.1f s", sig, drain_s)
            timer = threading.Timer(drain_s, lambda: setattr(self, "should_exit", True))
            timer.daemon = True
            timer.start()

    return DrainingServer(config)


def check_serve_args(port, max_batch_size, batch_timeout_ms, drain_s, shutdown_timeout_s):
    """UserError naming the first bad argument."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"port must be an integer between 0 and 65535, got {port!r}")
    if (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or max_batch_size < 1
    ):
        raise UserError(f"max batch size must be a positive integer, got {max_batch_size!r}")
    if not batch_timeout_ms >= 0:
        raise UserError(f"batch timeout must be >= 0 ms, got {batch_timeout_ms!r}")
    if not drain_s >= 0:
        raise UserError(f"drain time must be >= 0 s, got {drain_s!r}")
    if not shutdown_timeout_s >= 0:
        raise UserError(f"shutdown timeout must be >= 0 s, got {shutdown_timeout_s!r}")


def run_app(
    app, host="127.0.0.1", port=8080, drain_s=5.0, shutdown_timeout_s=30.0, log_level="info"
):
    """Runs an app from `create_app` until SIGTERM/SIGINT, then drains and returns."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=shutdown_timeout_s
    )
    _draining_server(config, app.state.service, drain_s).run()


def serve(
    export_dir,
    backend="onnx",
    host="127.0.0.1",
    port=8080,
    max_batch_size=16,
    batch_timeout_ms=5,
    model_name=DEFAULT_MODEL_NAME,
    quantized=False,
    threads=None,
    limits=None,
    log_level="info",
    drain_s=5.0,
    shutdown_timeout_s=30.0,
):
    """Serves an export directory over HTTP until SIGTERM/SIGINT (see `create_app` for args).

    Binds 127.0.0.1 unless `host` says otherwise: put a reverse proxy or load balancer in
    front to expose it.

    Raises:
        UserError: unknown backend, not an export directory, or a bad argument.
    """
    check_serve_args(port, max_batch_size, batch_timeout_ms, drain_s, shutdown_timeout_s)
    app = create_app(
        export_dir,
        backend=backend,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        model_name=model_name,
        quantized=quantized,
        threads=threads,
        limits=limits,
    )
    run_app(app, host, port, drain_s, shutdown_timeout_s, log_level)
