"""A loopback OTLP/HTTP receiver for tests: POST /v1/traces, protobuf decoded with
opentelemetry-proto, every span kept (duplicates too: the tests count them)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


class Receiver:
    def __init__(self, *, refuse: int = 0) -> None:
        self.refuse = refuse  # answer the first `refuse` requests 400 (a non-retryable failure)
        self.spans: list[dict] = []
        self.raw = bytearray()
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                if receiver.refuse > 0:
                    receiver.refuse -= 1
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver._take(body)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            self.requests += 1
            self.raw += body
            for rs in request.resource_spans:
                resource = _attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append({
                            "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                            "parent_id": s.parent_span_id.hex() or None, "name": s.name,
                            "kind": s.kind, "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                            "attributes": _attrs(s.attributes), "status": s.status.code,
                            "status_message": s.status.message,
                            "events": [{"name": e.name, "ts": e.time_unix_nano, "attributes": _attrs(e.attributes)}
                                       for e in s.events],
                            "links": [{"trace_id": k.trace_id.hex(), "span_id": k.span_id.hex()} for k in s.links],
                            "resource": resource, "scope": ss.scope.name,
                        })

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
