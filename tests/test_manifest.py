"""Signed manifests of sealed runs (kernel/manifest.py): a run deleted together with its seals
passes `vigil verify --key`, and is named by `vigil verify --key --manifest`; on both backends,
through the real CLI."""

from __future__ import annotations

import json

import pytest

from cli_helpers import vigil
from test_chain import _keys, _make, _rechain, _rewrite, sql
from kernel.events import StepStarted

pytest.importorskip("cryptography")


def _sealed_with_manifest(target, tmp_path):
    for run_id in ("run-a", "run-b", "run-c"):
        _make(target, run_id, steps=3)
    private, public = _keys(tmp_path)
    manifest = tmp_path / "sealed.json"
    out = vigil("seal", "--all", "--key", str(private), "--manifest", str(manifest), db=target)
    assert out.returncode == 0, out.stderr
    assert f"manifest of 3 sealed run(s) written to {manifest}" in out.stdout.decode()
    return public, manifest


def test_a_run_deleted_with_its_seals_is_named_only_with_the_manifest(both_backends, tmp_path):
    target = both_backends
    public, manifest = _sealed_with_manifest(target, tmp_path)
    ok = vigil("verify", "--key", str(public), "--manifest", str(manifest), db=target)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for table in ("events", "runs", "seals"):
        sql(target, f"DELETE FROM {{t}}{table} WHERE run_id = 'run-b'")
    # what the log alone can say: every run left is whole and sealed
    assert vigil("verify", "--key", str(public), db=target).returncode == 0
    out = vigil("verify", "--key", str(public), "--manifest", str(manifest), db=target)
    assert out.returncode == 1
    assert "run run-b seq 7: the manifest lists it sealed, but it is not in the log (deleted)" in out.stdout.decode()
    assert out.stderr.decode() == "vigil: 1 of 3 runs failed verification\n"


def test_a_run_rewritten_and_resealed_without_the_key_no_longer_matches_the_manifest(both_backends, tmp_path):
    """A forger rewrites a body, recomputes the chain and deletes the seals; with the run's own
    seals gone, only the manifest still holds the hash the operator signed."""
    target = both_backends
    public, manifest = _sealed_with_manifest(target, tmp_path)
    _rewrite(target, "run-a", 2, StepStarted(step_id="1.count", node="forged"))
    _rechain(target, "run-a")
    sql(target, "DELETE FROM {t}seals WHERE run_id = 'run-a'")
    out = vigil("verify", "--key", str(public), "--manifest", str(manifest), "run-a", db=target)
    assert out.returncode == 1
    assert "the hash chain no longer reaches the hash the manifest holds for seq 7" in out.stdout.decode()
    sql(target, "DELETE FROM {t}events WHERE run_id = 'run-c' AND seq > 5")
    out = vigil("verify", "--key", str(public), "--manifest", str(manifest), "run-c", db=target)
    assert "the manifest lists it sealed at seq 7, but the run now ends at seq 5" in out.stdout.decode()


def test_an_edited_manifest_or_another_key_is_refused_in_one_line(tmp_path):
    target = tmp_path / "v.db"
    public, manifest = _sealed_with_manifest(target, tmp_path)
    doc = json.loads(manifest.read_text())
    doc["runs"] = [r for r in doc["runs"] if r[0] != "run-b"]  # hide a run from the list
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    _, other = _keys(tmp_path, "other")
    for args, expect in (
        (("--key", str(public), "--manifest", str(edited)), "the signature does not hold (the manifest was edited)"),
        (("--key", str(other), "--manifest", str(manifest)), "was signed by key"),
        (("--manifest", str(manifest)), "--manifest needs --key PUBLIC"),
        (("--key", str(public), "--manifest", str(tmp_path / "none.json")), "cannot read manifest"),
        (("--key", str(public), "--manifest", str(public)), "is not a vigil manifest"),
    ):
        out = vigil("verify", *args, db=target)
        err = out.stderr.decode()
        assert out.returncode == 2 and err.count("\n") == 1 and expect in err, (args, err)
