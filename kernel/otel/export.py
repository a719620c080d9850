"""Spans to OTLP/HTTP through opentelemetry-sdk, and the after-the-fact export of whole runs.

The SDK makes its own ids and clocks for live spans; ours come from the log, so each span is
built as a `ReadableSpan` with the SpanContext, parent and times we derived, and handed to the
OTLP/HTTP exporter as the SDK's batch processor would. opentelemetry is imported here only,
lazily, so the kernel imports without the `otel` extra.
"""

from __future__ import annotations

import logging
import os
from typing import Any, AsyncIterator, Iterable

from ..errors import VigilError
from .lineage import context_of
from .mapping import RunMapper
from .spans import Span

__all__ = ["OtlpSender", "ExportFailed", "default_endpoint", "run_spans", "export_runs", "BATCH"]

BATCH = 512  # spans per request: well under a collector's default 4 MiB limit


class ExportFailed(VigilError):
    """The receiver did not take a batch (unreachable, refused, or an error status)."""


def default_endpoint() -> str:
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://127.0.0.1:4318"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP convention: a base endpoint gets `/v1/traces`; a full one is used as is."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class OtlpSender:
    """Sends lists of our Spans; `send` raises ExportFailed (one line, no traceback)."""

    def __init__(self, endpoint: str, *, timeout: float = 10.0, service: str | None = None) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError:
            raise VigilError("exporting traces needs the otel extra: pip install 'vigil-console[otel]'") from None
        # The exporter logs a traceback-laden warning per failed batch; we report one line instead.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
        self.url = traces_url(endpoint)
        self._exporter = OTLPSpanExporter(endpoint=self.url, timeout=timeout)
        self._resource = Resource.create({"service.name": service or os.environ.get("OTEL_SERVICE_NAME") or "vigil"})
        self._scope = InstrumentationScope("vigil", _version())

    def send(self, spans: list[Span]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for i in range(0, len(spans), BATCH):
            chunk = [self._readable(s) for s in spans[i:i + BATCH]]
            try:
                result = self._exporter.export(chunk)
            except Exception as exc:  # the exporter raises on some transport errors instead of failing
                raise ExportFailed(f"could not send traces to {self.url}: {exc}") from None
            if result is not SpanExportResult.SUCCESS:
                raise ExportFailed(f"could not send traces to {self.url} (unreachable, or it refused them)")

    def close(self) -> None:
        self._exporter.shutdown()

    def _readable(self, s: Span) -> Any:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

        def ctx(tid: int, sid: int) -> SpanContext:
            return SpanContext(tid, sid, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))

        return ReadableSpan(
            name=s.name,
            context=ctx(s.trace_id, s.span_id),
            parent=ctx(s.trace_id, s.parent_id) if s.parent_id else None,
            resource=self._resource,
            attributes=s.attributes,
            events=[Event(e.name, e.attributes, timestamp=e.ts_ns) for e in s.events],
            links=[Link(ctx(k.trace_id, k.span_id), k.attributes) for k in s.links],
            kind=trace.SpanKind.CLIENT if s.kind == "client" else trace.SpanKind.INTERNAL,
            instrumentation_scope=self._scope,
            status=Status(StatusCode.ERROR, s.error) if s.error is not None else Status(StatusCode.UNSET),
            start_time=s.start_ns,
            end_time=s.end_ns,
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vigil-console")
    except PackageNotFoundError:
        return "unknown"


async def run_spans(store: Any, run_id: str, cache: dict | None = None) -> list[Span]:
    """Every finished span of a run (a run still going: the steps and calls that ended)."""
    mapper: RunMapper | None = None
    spans: list[Span] = []
    async for record in store.iter_events(run_id):
        if mapper is None:
            mapper = RunMapper(run_id, await context_of(store, run_id, record.event if record.seq == 1 else None, cache))
        spans += mapper.feed(record)
    return spans


async def all_run_ids(store: Any) -> AsyncIterator[str]:
    offset = 0
    while True:
        page = await store.runs(limit=500, offset=offset, order="oldest")
        for run in page:
            yield run.run_id
        if len(page) < 500:
            return
        offset += len(page)


async def export_runs(store: Any, run_ids: Iterable[str] | AsyncIterator[str], send) -> tuple[int, int]:
    """Send each run's spans (a run at a time, so memory is one run's); (runs, spans) sent.
    `send` is blocking (the exporter speaks HTTP synchronously); it runs in a thread."""
    import asyncio

    cache: dict = {}
    runs = spans = 0

    async def ids():
        if hasattr(run_ids, "__aiter__"):
            async for r in run_ids:
                yield r
        else:
            for r in run_ids:
                yield r

    async for run_id in ids():
        batch = await run_spans(store, run_id, cache)
        if batch:
            await asyncio.to_thread(send, batch)
        runs, spans = runs + 1, spans + len(batch)
    return runs, spans
