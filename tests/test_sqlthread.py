"""SqlThread's promise (the reason it replaced aiosqlite, README "What it is built on"): a function
sent to the thread runs to its end whatever happens to the task awaiting it, so a cancelled
transaction never leaves the write lock held."""

import asyncio
import sqlite3
import threading

from kernel.log.sqlite.sqlthread import SqlThread


def connect(path):
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=0")
    return conn


def test_a_cancelled_transaction_runs_to_its_end_and_releases_the_write_lock(tmp_path):
    path = tmp_path / "t.db"
    connect(path).execute("CREATE TABLE t(x INTEGER)")
    inside, go_on = threading.Event(), threading.Event()

    def transaction(conn):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (1)")
        inside.set()
        go_on.wait(5)  # the awaiting task is cancelled while we are here
        conn.execute("INSERT INTO t VALUES (2)")
        conn.execute("COMMIT")

    async def main():
        thread = SqlThread(lambda: connect(path), "test")
        await thread.start()
        task = asyncio.create_task(thread.call(transaction))
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, 5)
        task.cancel()
        go_on.set()
        assert (await asyncio.gather(task, return_exceptions=True))[0].__class__ is asyncio.CancelledError
        in_tx = await thread.call(lambda conn: conn.in_transaction)
        await thread.close()
        return in_tx

    assert asyncio.run(main()) is False
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the lock were still held
    other.execute("ROLLBACK")
    assert [r[0] for r in other.execute("SELECT x FROM t ORDER BY x")] == [1, 2]


def test_a_thread_never_closed_lets_the_process_exit_and_runs_what_was_queued(tmp_path):
    """The thread is not an executor's: at exit what is queued still runs, then it ends (a store
    left open must neither hang the interpreter nor drop a commit it had taken)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent(f"""
        import asyncio, sqlite3, threading
        from kernel.log.sqlite.sqlthread import SqlThread

        def connect():
            return sqlite3.connect({str(tmp_path / "t.db")!r}, isolation_level=None, check_same_thread=False)

        def slow_insert(conn, started):
            started.set()
            import time; time.sleep(0.3)
            conn.execute("CREATE TABLE t(x)")
            conn.execute("INSERT INTO t VALUES (1)")

        async def main():
            thread = SqlThread(connect, "left-open")
            await thread.start()
            started = threading.Event()
            thread._send(thread._run, (slow_insert, (started,)))  # queued, never awaited
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)

        asyncio.run(main())
    """)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, timeout=30, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(tmp_path / "t.db")
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == [1]


def test_a_call_after_close_is_refused_not_left_waiting(tmp_path):
    async def main():
        thread = SqlThread(lambda: connect(tmp_path / "t.db"), "test")
        await thread.start()
        await thread.close()
        try:
            await asyncio.wait_for(thread.call(lambda conn: 1), 5)
        except RuntimeError:
            return "refused"
        return "ran"

    assert asyncio.run(main()) == "refused"
