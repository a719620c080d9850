"""What the driver does with artifacts (kernel/artifacts.py): `ctx.artifact` as a recorded call,
and effect outputs over the threshold stored as artifacts, read back on replay.

The bytes are committed to the artifacts table before the event that references them is
appended, so the log never references an artifact it does not hold; a crash in between leaves
an unreferenced artifact (harmless: the same bytes stored again are the same row).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactMissing, ArtifactRef, artifact_id, decode_output, encode_output, ref_of, threshold
from ..errors import Failed, Lost, StoreError
from ..events import ArtifactStored

if TYPE_CHECKING:  # pragma: no cover
    from .context import Ctx
    from .driver import RunDriver

__all__ = ["record_artifact", "offload_output", "replayed_output"]


async def record_artifact(driver: "RunDriver", ctx: "Ctx", position: str, data: bytes, kind: str) -> ArtifactRef:
    """`ctx.artifact`: matched at its call position like every ctx call (the same kind and the
    same bytes, or the run diverges); replayed, it returns the recorded reference and neither
    stores nor records anything again."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"ctx.artifact takes bytes, not {type(data).__name__}")
    if not isinstance(kind, str) or not kind:
        raise TypeError("ctx.artifact needs a kind (a non-empty string, e.g. 'text/csv')")
    data = bytes(data)
    ref = ArtifactRef(artifact_id=artifact_id(data), kind=kind, size=len(data))
    position = driver.expect(ctx, position, "artifact", kind, {"artifact_id": ref.artifact_id, "size": ref.size})
    if position in driver.view.artifacts:
        return ref
    await _put(driver, data, kind)
    await driver.emit(ArtifactStored(
        artifact_id=ref.artifact_id, kind=kind, size=ref.size, step_id=ctx.step_id, action_id=position,
    ))
    return ref


async def offload_output(driver: "RunDriver", action_id: str, output: Any) -> Any:
    """What an effect's ActionSucceeded records: the output itself, or, past the threshold, a
    reference to an artifact holding it (stored, and its ArtifactStored queued, first)."""
    encoded = encode_output(output, threshold(driver.host))
    if encoded is None:
        return output
    data, kind = encoded
    info = await _put(driver, data, kind)
    record = driver.view.actions.get(action_id)
    step_id = record.requested.step_id if record is not None else action_id.partition("#")[0]
    driver.post(ArtifactStored(
        artifact_id=info.artifact_id, kind=kind, size=len(data), step_id=step_id, action_id=action_id,
    ))
    return {"artifact_id": info.artifact_id, "kind": kind, "size": len(data)}


async def _put(driver: "RunDriver", data: bytes, kind: str) -> Any:
    """A log that cannot take the bytes is lost to this driver, as when it cannot take an append
    (Appends._wait): the run stops here and whoever adopts it next goes on from the log."""
    try:
        return await driver.store.put_artifact(data, kind)
    except StoreError as exc:
        driver._error = driver._error or exc
        raise Lost(f"run {driver.run_id}: {exc}") from exc


async def replayed_output(driver: "RunDriver", action_id: str, output: Any, stored: Any = None) -> Any:
    """A recorded output as the node first saw it: read back from its artifact if the log
    stored it as one (an ArtifactStored for this action -- the view's, unless given -- and the
    reference in the output)."""
    stored = stored if stored is not None else driver.view.artifacts.get(action_id)
    ref = ref_of(output) if stored is not None else None
    if ref is None or ref.artifact_id != stored.artifact_id:
        return output
    try:
        data = await driver.store.get_artifact(ref.artifact_id)
        if artifact_id(data) != ref.artifact_id:
            raise ArtifactMissing(f"artifact {ref.artifact_id} does not hash to its id (corrupt)")
        return decode_output(data, ref.kind)
    except ArtifactMissing as exc:
        raise Failed(f"the output of {action_id} cannot be replayed: {exc}") from None
