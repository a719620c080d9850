"""`Store` is the event log port every part of vigil is written against; `Store.open` picks the
backend from the target: a path (or `sqlite:PATH`) is SQLite, `postgresql://...` is PostgreSQL.
See kernel/log/port.py for what a log offers."""

from .log.port import EventLog as Store

__all__ = ["Store"]
