"""Watching for a spot interruption notice in the instance metadata, and a loopback stand-in.

A spot VM's process is not told of its coming end by a signal. AWS publishes the notice about
two minutes ahead in the instance metadata: ``GET /latest/meta-data/spot/instance-action``
answers 404 until then, and then 200 with ``{"action": "terminate"|"stop"|"hibernate",
"time": "<UTC>"}`` (IMDSv2: each request carries a token from ``PUT /latest/api/token``).
GCP sets the metadata value ``instance/preempted`` to ``TRUE`` (``GET
/computeMetadata/v1/instance/preempted`` with the header ``Metadata-Flavor: Google``) and
sends the guest an ACPI soft-off; the shutdown that follows leaves about 30 s. SIGTERM
arrives only with that shutdown (or a Kubernetes drain), so a job that polls the metadata
can stop between chunks before the shutdown begins.

:class:`SpotNoticeWatcher` polls one of these endpoints from a daemon thread and turns a
notice into a ``should_stop()`` the batch job checks between chunks; errors (no metadata
service: not on a cloud) are counted, never raised. :class:`FakeMetadataServer` serves
both clouds' endpoints on 127.0.0.1 for the tests and notebook 11: nothing here can reach a
real metadata address from this machine, and the stand-in is labelled as such.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nepse_perf._infra.checks import positive_float

__all__ = [
    "METADATA_BASE",
    "PROVIDERS",
    "FakeMetadataServer",
    "SpotNotice",
    "SpotNoticeWatcher",
    "read_notice",
]

#: Each provider's metadata base URL (link-local; reachable only from inside the VM).
METADATA_BASE: dict[str, str] = {
    "aws": "http://169.254.169.254",
    "gcp": "http://metadata.google.internal",
}
PROVIDERS: tuple[str, ...] = tuple(METADATA_BASE)

_AWS_TOKEN = "/latest/api/token"
_AWS_ACTION = "/latest/meta-data/spot/instance-action"
_GCP_PREEMPTED = "/computeMetadata/v1/instance/preempted"


@dataclass(frozen=True)
class SpotNotice:
    """A notice read from the metadata: the provider, its action and when it takes effect."""

    provider: str
    action: str
    time: str | None


def _get(url: str, headers: dict[str, str], timeout: float, method: str = "GET") -> str | None:
    """The body of a 200 answer, None for a 404 (no notice); other failures raise OSError."""
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def read_notice(provider: str, base: str | None = None, timeout: float = 1.0) -> SpotNotice | None:
    """One poll of ``provider``'s metadata (``base`` overrides its address): the notice or None.

    AWS: an IMDSv2 token, then ``spot/instance-action`` (404: none yet). GCP:
    ``instance/preempted`` (``TRUE``: preempted). Raises ``ValueError`` for an unknown
    provider and ``OSError`` when the metadata service cannot be reached.
    """
    if provider not in METADATA_BASE:
        raise ValueError(f"unknown provider {provider!r}; choose one of {list(PROVIDERS)}")
    base = (base or METADATA_BASE[provider]).rstrip("/")
    if provider == "gcp":
        body = _get(base + _GCP_PREEMPTED, {"Metadata-Flavor": "Google"}, timeout)
        if body is not None and body.strip().upper() == "TRUE":
            return SpotNotice("gcp", "preempted", None)
        return None
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    token = _get(base + _AWS_TOKEN, ttl, timeout, method="PUT") or ""
    body = _get(base + _AWS_ACTION, {"X-aws-ec2-metadata-token": token}, timeout)
    if body is None:
        return None
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        doc = {}
    return SpotNotice("aws", str(doc.get("action", "terminate")), doc.get("time"))


class SpotNoticeWatcher:
    """Poll the metadata every ``interval_s`` seconds from a daemon thread until a notice.

    ``should_stop()`` turns true once a notice was read (``notice`` holds it); ``errors``
    counts failed polls (none is raised: off a cloud, the service is simply not there).
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self, provider: str = "aws", base: str | None = None, interval_s: float = 5.0
    ) -> None:
        if provider not in METADATA_BASE:
            raise ValueError(f"unknown provider {provider!r}; choose one of {list(PROVIDERS)}")
        self.provider, self.base = provider, base
        self.interval_s = positive_float(interval_s, "interval_s")
        self.notice: SpotNotice | None = None
        self.polls = 0
        self.errors = 0
        self._seen = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spot-notice", daemon=True)

    def _run(self) -> None:
        while not self._quit.is_set():
            try:
                notice = read_notice(self.provider, self.base, timeout=min(1.0, self.interval_s))
            except OSError:
                self.errors += 1
            else:
                self.polls += 1
                if notice is not None:
                    self.notice = notice
                    self._seen.set()
                    return
            self._quit.wait(self.interval_s)

    def should_stop(self) -> bool:
        """True once a spot notice has been read."""
        return self._seen.is_set()

    def start(self) -> SpotNoticeWatcher:
        """Start polling; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._quit.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> SpotNoticeWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _MetadataHandler(BaseHTTPRequestHandler):
    server: FakeMetadataServer

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read stderr
        return

    def _answer(self, status: int, body: str = "") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.path == _AWS_TOKEN:
            self._answer(200, "stand-in-token")
        else:
            self._answer(404)

    def do_GET(self) -> None:
        notice = self.server.notice
        if self.path == _AWS_ACTION:
            if self.headers.get("X-aws-ec2-metadata-token") != "stand-in-token":
                self._answer(401)
            elif notice is None:
                self._answer(404)
            else:
                self._answer(200, json.dumps({"action": notice.action, "time": notice.time}))
        elif self.path == _GCP_PREEMPTED and self.headers.get("Metadata-Flavor") == "Google":
            self._answer(200, "TRUE" if notice is not None else "FALSE")
        else:
            self._answer(404)


class FakeMetadataServer(ThreadingHTTPServer):
    """A loopback stand-in for AWS's and GCP's metadata endpoints (tests, notebook 11).

    ``base`` is its URL; :meth:`announce` makes both clouds' endpoints report a notice from
    then on. Not a real metadata service: only the three paths this module reads.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MetadataHandler)
        self.notice: SpotNotice | None = None
        self._thread = threading.Thread(target=self.serve_forever, name="metadata", daemon=True)

    @property
    def base(self) -> str:
        """The stand-in's base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def announce(self, action: str = "terminate", time: str | None = None) -> None:
        """Publish a spot notice (AWS's action and time; GCP's ``preempted`` turns TRUE)."""
        self.notice = SpotNotice("stand-in", action, time)

    def __enter__(self) -> FakeMetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
