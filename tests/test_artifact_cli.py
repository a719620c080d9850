"""Artifacts from the shell: export/import, copy and verify carry and check them, `vigil
artifact` prints, saves and lists one; on both backends (split from test_artifacts.py)."""

from __future__ import annotations

import hashlib

from kernel.store import Store
from runtime_helpers import run
from test_artifacts import CSV, raw, shipped_run


def test_export_carries_the_runs_artifacts_and_import_restores_them(new_log, tmp_path):
    from cli_helpers import vigil

    src, dst, bare = new_log(), new_log(), new_log()
    run_id = run(shipped_run(src))
    out = vigil("export", run_id, "-o", str(tmp_path / "run.jsonl"), db=src)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "run.jsonl").read_bytes().splitlines()
    assert lines[0].startswith(b'{"artifact_id":') and lines[1].startswith(b'{"artifact_id":')
    assert lines[2].startswith(b'{"run_id":')
    out = vigil("import", str(tmp_path / "run.jsonl"), db=dst)
    assert out.returncode == 0, out.stderr

    async def compare():
        async with await Store.open(src) as a, await Store.open(dst) as b:
            ids = [i.artifact_id async for i in a.iter_artifacts()]
            assert len(ids) == 2 and ids == [i.artifact_id async for i in b.iter_artifacts()]
            for aid in ids:
                assert await a.get_artifact(aid) == await b.get_artifact(aid)
                assert await a.artifact_info(aid) == await b.artifact_info(aid)
            assert await a.raw_rows(run_id) == await b.raw_rows(run_id)

    run(compare())
    assert vigil("verify", db=dst).returncode == 0

    # Without its artifact lines the file is refused, naming what is missing; nothing is written.
    (tmp_path / "bare.jsonl").write_bytes(b"\n".join(l for l in lines if not l.startswith(b'{"artifact_id":')) + b"\n")
    out = vigil("import", str(tmp_path / "bare.jsonl"), db=bare)
    err = out.stderr.decode()
    assert out.returncode != 0 and "references artifact" in err and "nothing was imported" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert vigil("runs", "--json", db=bare).stdout == b""

    # An artifact line whose bytes were changed is refused by its line number.
    tampered = [lines[0].replace(b'"data_b64":"', b'"data_b64":"AAAA'), *lines[1:]]
    (tmp_path / "tampered.jsonl").write_bytes(b"\n".join(tampered) + b"\n")
    out = vigil("import", str(tmp_path / "tampered.jsonl"), db=bare)
    assert out.returncode != 0 and "line 1: artifact" in out.stderr.decode()


def test_copy_brings_the_artifacts_along(tmp_path, pg_dsn):
    from cli_helpers import vigil

    src, back = tmp_path / "src.db", tmp_path / "back.db"
    run_id = run(shipped_run(src))
    out = vigil("copy", "--to", pg_dsn, db=src)
    assert out.returncode == 0 and b"copied 1 runs, 8 events, 2 artifacts" in out.stdout, out.stdout + out.stderr
    out = vigil("copy", "--from", pg_dsn, "--to", str(back), db=src)
    assert out.returncode == 0, out.stderr

    async def compare():
        async with await Store.open(src) as a, await Store.open(pg_dsn) as b, await Store.open(back) as c:
            ids = [i async for i in a.iter_artifacts()]
            assert len(ids) == 2
            assert ids == [i async for i in b.iter_artifacts()] == [i async for i in c.iter_artifacts()]
            for info in ids:
                assert await a.get_artifact(info.artifact_id) == await c.get_artifact(info.artifact_id)

    run(compare())
    assert vigil("verify", run_id, db=back).returncode == 0


def test_verify_rehashes_every_artifact_and_names_a_corrupt_or_missing_one(both_backends, tmp_path):
    from cli_helpers import vigil

    db = both_backends
    run_id = run(shipped_run(db))
    csv_id = hashlib.sha256(CSV).hexdigest()
    out = vigil("verify", db=db)
    assert out.returncode == 0, out.stdout + out.stderr
    key = tmp_path / "key"  # `verify --key` is the audit: it checks at least what verify does
    assert vigil("keygen", str(key), db=db).returncode == 0
    assert vigil("seal", "--all", "--key", str(key), db=db).returncode == 0

    run(raw(db, "UPDATE artifacts SET data = ? WHERE artifact_id = ?",
            "UPDATE vigil.artifacts SET data = %s WHERE artifact_id = %s", (CSV.replace(b"7", b"8"), csv_id)))
    for args in (("verify",), ("verify", run_id), ("verify", "--key", f"{key}.pub")):
        out = vigil(*args, db=db)
        text = out.stdout.decode()
        assert out.returncode == 1
        assert f"artifact {csv_id}: corrupt" in text and f"referenced by run {run_id} seq" in text
        assert "Traceback" not in out.stderr.decode()

    run(raw(db, "DELETE FROM artifacts WHERE artifact_id = ?", "DELETE FROM vigil.artifacts WHERE artifact_id = %s", (csv_id,)))
    out = vigil("verify", db=db)
    assert out.returncode == 1 and f"artifact {csv_id} is not in the log" in out.stdout.decode()


def test_vigil_artifact_prints_saves_and_lists(both_backends, tmp_path):
    from cli_helpers import vigil

    db = both_backends
    run_id = run(shipped_run(db))
    csv_id = hashlib.sha256(CSV).hexdigest()
    out = vigil("artifact", csv_id[:12], db=db)
    assert out.returncode == 0 and out.stdout == CSV
    out = vigil("artifact", csv_id, "-o", str(tmp_path / "out.csv"), db=db)
    assert out.returncode == 0 and (tmp_path / "out.csv").read_bytes() == CSV
    out = vigil("artifact", csv_id, "--info", db=db)
    assert out.stdout.decode().startswith(f"{csv_id}  {len(CSV)} bytes  text/csv")

    events = vigil("events", run_id, "--type", "ArtifactStored", db=db).stdout.decode().splitlines()
    assert len(events) == 2 and f"text/csv, {len(CSV):,} bytes, {csv_id[:12]} [1.work#0]" in events[0]
    listing = vigil("artifact", run_id, db=db).stdout.decode().splitlines()
    assert len(listing) == 2 and listing[0].startswith(f"{csv_id}  seq ") and "text/csv" in listing[0]
    page_seq = int(listing[1].split()[2])
    out = vigil("artifact", run_id, "--seq", str(page_seq), db=db)
    assert out.stdout.decode().startswith("<html>page text") and len(out.stdout) == len("<html>" + "page text " * 500 + "</html>")

    for args, message in ((("nothing",), "no run or artifact 'nothing'"),
                          ((run_id, "--seq", "1"), "references no artifact"),
                          (("0" * 64, "--seq", "1"), "--seq needs a run"),
                          ((csv_id, "-o", str(tmp_path / "no" / "dir" / "f")), "cannot write")):
        out = vigil("artifact", *args, db=db)
        err = out.stderr.decode()
        assert out.returncode != 0 and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    # a run with -o or --info but no --seq: refused, not the run's list with exit 0
    for args, message in (((run_id, "-o", str(tmp_path / "saved")), "-o needs an artifact id or --seq"),
                          ((run_id, "--info"), "--info needs an artifact id or --seq")):
        out = vigil("artifact", *args, db=db)
        err = out.stderr.decode()
        assert out.returncode == 2 and message in err and out.stdout == b"", (out.returncode, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "saved").exists()
