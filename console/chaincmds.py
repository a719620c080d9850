"""Tamper evidence from the shell: `vigil keygen`, `vigil seal`, and the `--key` option of
`vigil verify` (its check is commands.cmd_verify; kernel/chain.py, kernel/seals.py)."""

from __future__ import annotations

import argparse
import sys

# Only argparse at import: the parser is built for every `vigil` command; the kernel and the
# log are imported by the handlers that use them.

__all__ = ["add_parsers", "cmd_keygen", "cmd_seal"]


def add_parsers(sub, verify: argparse.ArgumentParser) -> None:
    verify.add_argument("--key", metavar="PUBLIC",
                        help="also check every seal made with this ed25519 public key (PATH.pub of `vigil keygen`); "
                             "a run without one fails")
    verify.add_argument("--manifest", metavar="FILE",
                        help="with --key: every run this signed manifest (`vigil seal --manifest`) lists must "
                             "still be in the log and reach its sealed hash (a run deleted with its seals is named)")
    p = sub.add_parser("keygen", help="a new ed25519 key pair for sealing: PATH (private, 0600) and PATH.pub")
    p.add_argument("path", metavar="PATH")
    p = sub.add_parser("seal", help="sign each run's hash chain at its last event with a private key")
    p.add_argument("run", nargs="?", help="run id or a unique prefix of one")
    p.add_argument("--all", action="store_true", help="every run in the log")
    p.add_argument("--key", metavar="PRIVATE", required=True, help="the private key from `vigil keygen`")
    p.add_argument("--manifest", metavar="FILE",
                   help="also write a signed list of the runs sealed to FILE (keep it off this machine): "
                        "`vigil verify --key PUBLIC --manifest FILE` then names a sealed run that was deleted")


async def cmd_keygen(args: argparse.Namespace) -> int:
    from kernel.seals import keygen

    from .commands import _out

    private, public, kid = keygen(args.path)
    _out(f"key {kid}: private {private} (keep it off this machine), public {public}")
    return 0


async def cmd_seal(args: argparse.Namespace) -> int:
    from kernel.errors import VigilError
    from kernel.seals import key_id, load_private, seal_run

    from .commands import _open, _out

    if bool(args.run) == bool(args.all):
        raise VigilError("seal needs a RUN or --all (one of them)")
    private = load_private(args.key)
    kid = key_id(private.public_key())
    async with await _open(args, readonly=False) as store:
        if args.run:
            run_ids = [await store.resolve(args.run)]
        else:
            run_ids = [r.run_id for r in await store.runs(limit=1_000_000_000, order="oldest")]
        refused = 0
        sealed: list[tuple[str, int, bytes]] = []
        for run_id in run_ids:
            try:
                done = await seal_run(store, run_id, private)
            except VigilError as exc:
                if args.run:
                    raise
                # One broken run must not leave the others unsealed: named, and the exit says so.
                print(f"vigil: {exc}", file=sys.stderr)
                refused += 1
                continue
            if done is None:
                _out(f"run {run_id}: no events, nothing to seal")
            else:
                seq, made, chain = done
                sealed.append((run_id, seq, chain))
                _out(f"run {run_id}: sealed at seq {seq} by key {kid}" + ("" if made else " (already)"))
    if args.manifest:
        from kernel.manifest import make, write

        write(make(private, kid, sealed), args.manifest)
        _out(f"manifest of {len(sealed)} sealed run(s) written to {args.manifest}")
    if refused:
        print(f"vigil: {refused} of {len(run_ids)} runs not sealed", file=sys.stderr)
    return 1 if refused else 0
