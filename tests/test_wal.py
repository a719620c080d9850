"""A copied vigil.db holds its data once every vigil has closed it; one copied without its -wal
while in use is refused with the reason, never read as if nothing were missing."""

import os
import shutil
import subprocess
import sys
import time

from cli_helpers import ROOT, vigil

WRITER = """
import asyncio, sys
from kernel.events import RunStarted
from kernel.store import Store

async def main(db):
    async with await Store.open(db) as store:
        await store.append("r1", [RunStarted(graph="g")], expected_seq=0)
        print("written", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


def test_after_the_last_close_the_db_file_alone_holds_everything(tmp_path):
    db = tmp_path / "vigil.db"
    assert vigil("demo", "--headless", db=db, timeout=120).returncode == 0
    assert not (tmp_path / "vigil.db-wal").exists()  # checkpointed and removed
    copy = tmp_path / "copy" / "vigil.db"
    copy.parent.mkdir()
    shutil.copy(db, copy)
    original = vigil("runs", "--json", db=db).stdout
    copied = vigil("runs", "--json", db=copy)
    assert copied.returncode == 0 and copied.stdout == original and original.count(b"\n") == 4
    assert vigil("verify", db=copy).returncode == 0


def test_a_db_copied_without_its_wal_while_in_use_is_refused(tmp_path):
    db = tmp_path / "vigil.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        copy = tmp_path / "copy" / "vigil.db"
        copy.parent.mkdir()
        shutil.copy(db, copy)  # the -wal, which holds the run, stays behind
    finally:
        writer.kill()
        writer.communicate()
    for args in (("runs",), ("events", "r1"), ("verify",)):
        out = vigil(*args, db=copy)
        err = out.stderr.decode()
        assert out.returncode == 2 and err.count("\n") == 1, err
        assert "vigil.db-wal" in err and "copied or moved without it" in err
    # after a crash the -wal is still beside the file: no false alarm, and the run is there
    out = vigil("runs", "--json", db=db)
    assert out.returncode == 0 and b'"r1"' in out.stdout


def test_backups_of_a_log_in_use(tmp_path, monkeypatch):
    """`VACUUM INTO` (SQLite's online backup to a file) makes a complete copy in rollback mode: it
    has no -wal to lose and opens as it is. A copy by the backup API keeps the WAL mode and cannot
    be told from a file copied without its -wal: refused, with the way to open it named."""
    import sqlite3

    db = tmp_path / "vigil.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        vacuumed, backed_up = tmp_path / "vacuumed.db", tmp_path / "backed-up.db"
        source = sqlite3.connect(db)
        source.execute("VACUUM INTO ?", (str(vacuumed),))
        dest = sqlite3.connect(backed_up)
        source.backup(dest)
        dest.close()
        source.close()
    finally:
        writer.kill()
        writer.communicate()
    out = vigil("runs", "--json", db=vacuumed)
    assert out.returncode == 0 and b'"r1"' in out.stdout, out
    assert vigil("verify", db=vacuumed).returncode == 0
    err = vigil("runs", db=backed_up).stderr.decode()
    assert "copied or moved without it" in err and "VACUUM INTO" in err and err.count("\n") == 1, err
    monkeypatch.setenv("VIGIL_IGNORE_MISSING_WAL", "1")
    out = vigil("runs", "--json", db=backed_up)
    assert out.returncode == 0 and b'"r1"' in out.stdout, out
