"""Seals: ed25519 signatures over a run's hash chain at a seq (kernel/chain.py), made with a key
the operator holds, checked with its public half.

A seal signs exactly these bytes (version 1):

    b"vigil seal v1\\n" || u32be(len(run_id)) || run_id || i64be(seq) || chain(seq) || i64be(sealed_ns)

Seals live in their own table, not as events in the run: sealing must work on a run another
process owns (its appends go on), and on an ended run (nothing may follow its end), and a
signature needs nothing around it to be trusted. Rewriting a run's bodies and recomputing its
whole chain consistently passes `vigil verify`, but not `vigil verify --key`: the chain no
longer reaches the sealed hash, and a new seal cannot be made without the private key.

Needs the `cryptography` package (`pip install 'vigil-console[sign]'`); imported only here,
only when a key is used.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import time
from pathlib import Path
from typing import Any

from .chain import ChainCheck
from .errors import VigilError

__all__ = [
    "SealError", "keygen", "load_private", "load_public", "key_id", "seal_message", "seal_run",
    "seal_problems",
]

_DOMAIN = b"vigil seal v1\n"


class SealError(VigilError):
    """A key file that is missing, unreadable or not an ed25519 key; or no `cryptography`."""


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SealError(
            "signing needs the cryptography package: pip install 'vigil-console[sign]'"
        ) from None
    return ed25519


def seal_message(run_id: str, seq: int, chain: bytes, sealed_ns: int) -> bytes:
    rid = run_id.encode()
    return _DOMAIN + struct.pack(">I", len(rid)) + rid + struct.pack(">q", seq) + chain + struct.pack(">q", sealed_ns)


def key_id(public: Any) -> str:
    """A short name for a public key: the first 16 hex digits of sha256 of its raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(path: str | os.PathLike) -> tuple[Path, Path, str]:
    """Write a new private key to PATH (PEM PKCS#8, 0600) and its public key to PATH.pub (PEM);
    never over an existing file. Returns (private path, public path, key id)."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    private_path, public_path = Path(path), Path(f"{path}.pub")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for target in (private_path, public_path):
        if target.exists():
            raise SealError(f"{target} already exists; not overwriting a key")
    # O_EXCL with the mode: the private key is never readable by others, not even for a moment.
    _write_new(private_path, pem, 0o600)
    try:
        _write_new(public_path, pub, 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return private_path, public_path, key_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise SealError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # the mode given to open() is filtered through the umask
    finally:
        os.close(fd)


def _read(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SealError(f"cannot read key {path}: {exc.strerror}") from None


def _private_only(path: str | os.PathLike) -> None:
    """Refuse a private key file others can read, as ssh does: whoever can read it can seal."""
    try:
        st = os.stat(path)
    except OSError:
        return  # _read says why in one line
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        raise SealError(f"{path} can be read by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                        f"`chmod 600 {path}` first, or pass it on stdin")


def load_private(path: str | os.PathLike) -> Any:
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # cryptography's own text names PEM framing and links to its FAQ; say what to do instead
        if b"PUBLIC KEY" in data:
            raise SealError(f"{path} is a public key; seal takes the private one (PATH of `vigil keygen`)") from None
        raise SealError(f"{path} is not an unencrypted PEM private key (make one with `vigil keygen PATH`)") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SealError(f"{path} is not an ed25519 private key")
    _private_only(path)
    return key


def load_public(path: str | os.PathLike) -> Any:
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        # Given the private key by mistake: say so rather than "not a public key".
        if b"PRIVATE KEY" in data:
            raise SealError(f"{path} is a private key; --key takes the public one (PATH.pub)") from None
        raise SealError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SealError(f"{path} is not an ed25519 public key")
    return key


async def seal_run(store: Any, run_id: str, private: Any) -> tuple[int, bool, bytes] | None:
    """Seal the run's head (its last row now) with `private`: (seq, made, chain) where made is
    False if this key had sealed that seq already; None for a run without events. The chain is recomputed
    from the bodies first: a seal over a chain that is already broken would vouch for the edit."""
    check = ChainCheck(run_id)
    lo = 1
    while rows := await store.chain_rows(run_id, lo, 2000):
        check.feed(rows)
        if len(rows) < 2000:
            break
        lo = rows[-1][0] + 1
    if check.rows == 0:
        return None
    if check.first_break is not None:
        seq, why = check.first_break
        raise VigilError(f"run {run_id}: not sealed: its hash chain breaks at seq {seq} ({why})")
    sealed_ns = time.time_ns()
    signature = private.sign(seal_message(run_id, check.last_seq, check.head, sealed_ns))
    made = await store.add_seal(
        run_id, check.last_seq, check.head, key_id(private.public_key()), sealed_ns, signature
    )
    return check.last_seq, made, check.head


def seal_problems(run_id: str, seals: list[tuple], check: ChainCheck, public: Any) -> tuple[list[tuple[int, str]], int]:
    """Check the run's seals made by `public`'s key against the chain the bodies give now.
    Returns ([(seq, problem)], the highest seq a good seal covers, 0 if none)."""
    from cryptography.exceptions import InvalidSignature

    mine = key_id(public)
    problems: list[tuple[int, str]] = []
    covered = 0
    for seq, chain, kid, sealed_ns, signature in seals:
        if kid != mine:
            continue  # another key's seal: not this check's to judge
        try:
            public.verify(signature, seal_message(run_id, seq, chain, sealed_ns))
        except InvalidSignature:
            problems.append((seq, f"the seal at seq {seq} has a bad signature (key {kid})"))
            continue
        if seq > check.last_seq:
            problems.append((seq, f"sealed at seq {seq}, but the run now ends at seq {check.last_seq} (events were removed)"))
        elif check.at.get(seq) != chain:
            problems.append((seq, f"the hash chain no longer reaches the hash sealed at seq {seq} (a row up to it was rewritten)"))
        else:
            covered = max(covered, seq)
    if not problems and covered == 0 and check.rows:
        problems.append((check.last_seq, f"no seal by key {mine}"))
    return problems, covered
