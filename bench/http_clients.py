"""HTTP clients for the model providers, side by side: the same streamed chat-completions calls
(the loopback server of bench/openai_stream_server.py, N conversations at once, 5 calls each, the
SSE body read through kernel/agents/models/sse.py) made by httpx, httpx with a client per
conversation (no shared pool to scan), aiohttp, and the kernel's own client (wire.py). Each option
runs in a fresh process; the options alternate round by round. CPU per call is the figure.

    python -m bench.http_clients [N] [ROUNDS]      # default 1000 conversations, 3 rounds
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

import msgspec

from kernel.agents.models.sse import events

CALLS = 5
OPTIONS = ("httpx", "httpx_per_run", "aiohttp", "wire")


async def _conversation(post, url: str, i: int) -> None:
    messages = [{"role": "user", "content": f"customer {i}"}]
    for _ in range(CALLS):
        body = msgspec.json.encode({"model": "m", "messages": messages, "stream": True})
        done = False
        async for _, data in events(post(url + "/v1/chat/completions", body)):
            if data == "[DONE]":
                done = True
            else:
                msgspec.json.decode(data)
        assert done
        messages.append({"role": "assistant", "content": "x"})


async def _run(option: str, url: str, n: int) -> dict:
    headers = {"content-type": "application/json"}
    if option.startswith("httpx"):
        import httpx

        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        shared = httpx.AsyncClient(limits=limits, timeout=600)

        def make():
            client = shared if option == "httpx" else httpx.AsyncClient(limits=limits, timeout=600)

            async def post(u, body):
                async with client.stream("POST", u, headers=headers, content=body) as r:
                    async for chunk in r.aiter_bytes():
                        yield chunk
            return post
    elif option == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600))

        def make():
            async def post(u, body):
                async with session.post(u, data=body, headers=headers) as r:
                    async for chunk in r.content.iter_any():
                        yield chunk
            return post
    else:
        from kernel.agents.models.wire import Client

        client = Client(600)

        def make():
            async def post(u, body):
                async with client.stream("POST", u, headers, body) as r:
                    async for chunk in r.aiter_bytes():
                        yield chunk
            return post

    posts = [make() for _ in range(n)]  # httpx_per_run: its AsyncClients made before the clock starts
    await _conversation(posts[0], url, -1)  # warm-up
    cpu, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(_conversation(posts[i], url, i) for i in range(n)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - t0
    return dict(option=option, n=n, cpu_ms_per_call=cpu * 1000 / (n * CALLS), cores=cpu / wall, wall_s=wall)


def main(n: int, rounds: int) -> list[dict]:
    from .many_runs import ModelServer, load

    got: dict[str, list[dict]] = {o: [] for o in OPTIONS}
    with ModelServer() as server:
        for _ in range(rounds):
            for option in OPTIONS:
                out = subprocess.run([sys.executable, "-m", "bench.http_clients", "--one", option, server.url, str(n)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout)
                r["load"] = load()
                got[option].append(r)
                print(json.dumps(r), flush=True)
    return [dict(option=o, cpu_ms_per_call=statistics.median(r["cpu_ms_per_call"] for r in rs),
                 each=[round(r["cpu_ms_per_call"], 3) for r in rs], loads=[r["load"] for r in rs])
            for o, rs in got.items()]


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(asyncio.run(_run(sys.argv[2], sys.argv[3], int(sys.argv[4])))))
    else:
        args = [int(a) for a in sys.argv[1:3]]
        for row in main(*(args + [1000, 3][len(args):])):
            print(json.dumps(row))
