"""Runs as OpenTelemetry traces (GenAI semantic conventions), built from the log alone.

- `spans`: the span records and their deterministic ids (sha256 of run id and seq)
- `mapping`: a run's events, in seq order, to finished spans (pure, no OpenTelemetry import)
- `lineage`: which trace a run belongs to (a child run joins its parent's trace)
- `export`: spans to OTLP/HTTP through opentelemetry-sdk, and `vigil otel export`
- `follow`: the live exporter over the log's tail, with a durable cursor

opentelemetry is an optional extra (`vigil-console[otel]`): only `export` imports it, lazily.
"""
