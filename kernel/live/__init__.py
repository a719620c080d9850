"""The live channel: model tokens from the process that drives a run to consoles in other
processes (a second `vigil` over SSH, a console watching a `vigil worker`). Never durable: a
token is never written to the log (only the final message is, in ActionSucceeded), and a token
nobody is listening for is gone.

    async with publish.publishing(runtime, store):     # in the owner (worker, console, `vigil run`)
        ...
    feed = feed.LiveFeed(store, on_delta, on_reset, skip_owner=runtime.owner)   # in a viewer
    feed.want({"run-id"}); task = asyncio.create_task(feed.run())

SQLite: a unix socket per owner process beside the database (`<db>.live/<hash of owner>.sock`).
PostgreSQL: NOTIFY on a channel per run, so it works across hosts. See README "Live tokens
across processes" for why.
"""

# Nothing is imported here: a package that imports its own modules is in a cycle with them.
