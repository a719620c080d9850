"""A signed list of the runs a `vigil seal` sealed, kept outside the log.

Seals live in the log (kernel/seals.py), so someone who can write the database can delete a whole
run together with its seals, and `vigil verify --key` has nothing left to miss. A manifest names
every run sealed, each with the seq and chain its seal covers, signed with the same key: kept off
the box (or anywhere the log's writers cannot reach), it lets `vigil verify --key PUBLIC
--manifest FILE` say which sealed runs are gone or no longer reach their sealed chain.

The file is JSON; the signature covers (version 1):

    b"vigil manifest v1\\n" || the canonical JSON of {key, made_ns, runs}

where canonical is msgspec's encoding of the `Body` struct below (fields in declaration order, no
whitespace), so the file's own spacing does not matter.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from .errors import VigilError

__all__ = ["Entry", "Manifest", "ManifestError", "make", "write", "load"]

_DOMAIN = b"vigil manifest v1\n"


class ManifestError(VigilError):
    """A manifest that cannot be read, is not one, or whose signature does not hold."""


class Entry(msgspec.Struct, frozen=True, array_like=True):
    run_id: str
    seq: int
    chain: str  # hex


class Body(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # key id (kernel.seals.key_id) of the signer
    made_ns: int
    runs: list[Entry]


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    vigil_manifest: int
    key: str
    made_ns: int
    runs: list[Entry]
    signature: str  # hex

    def body(self) -> Body:
        return Body(key=self.key, made_ns=self.made_ns, runs=self.runs)


_encode = msgspec.json.Encoder().encode


def _message(body: Body) -> bytes:
    return _DOMAIN + _encode(body)


def make(private: Any, key: str, runs: list[tuple[str, int, bytes]]) -> Manifest:
    """Sign (run_id, seq, chain) of every sealed run."""
    body = Body(key=key, made_ns=time.time_ns(), runs=[Entry(r, s, c.hex()) for r, s, c in sorted(runs)])
    return Manifest(vigil_manifest=1, key=body.key, made_ns=body.made_ns, runs=body.runs,
                    signature=private.sign(_message(body)).hex())


def write(manifest: Manifest, path: str | os.PathLike) -> None:
    """Replace `path` whole or not at all (a crash mid-write must not leave half a manifest)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(_encode(manifest), indent=1) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike, public: Any, key: str) -> Manifest:
    """Read and check a manifest against the public key (whose id is `key`)."""
    from cryptography.exceptions import InvalidSignature

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from None
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ManifestError(f"{path} is not a vigil manifest ({exc})") from None
    if manifest.vigil_manifest != 1:
        raise ManifestError(f"{path}: manifest version {manifest.vigil_manifest} is not known here")
    if manifest.key != key:
        raise ManifestError(f"{path} was signed by key {manifest.key}, not by {key}")
    try:
        public.verify(bytes.fromhex(manifest.signature), _message(manifest.body()))
    except (InvalidSignature, ValueError):
        raise ManifestError(f"{path}: the signature does not hold (the manifest was edited)") from None
    return manifest
