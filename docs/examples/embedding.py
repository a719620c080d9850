# docs/examples/embedding.py
"""Run a graph inside your own program (no CLI): a Runtime over a SQLite log, a run started,
its approval answered in code. Usage: python docs/examples/embedding.py PATH.db"""

import asyncio
import json
import sys

from kernel import Store
from kernel.registry import Registry
from kernel.engine.runtime import Runtime

from approvals import GRAPHS  # docs/examples/approvals.py, beside this file


async def main(db_path: str) -> dict:
    registry = Registry()
    for graph in GRAPHS:
        registry.add(graph)                      # validates the graph
    asked = []
    async with await Store.open(db_path) as store:
        async with Runtime(store, registry) as rt:
            rt.listen(lambda what, run_id, data: asked.append(data) if what == "interrupt" else None)
            run_id = await rt.start("bills", {"bills": [["acme", 500]]})
            await rt.settle()                    # until every run has ended or waits for a human
            raised = asked.pop()                 # the InterruptRaised: id, title, payload, hash
            await rt.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            await rt.settle()
            info = await store.run(run_id)
            return {"status": info.status, "state": (await store.state_at(run_id)).state}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
