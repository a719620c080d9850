"""The redaction rules, the Secret type, and `vigil verify --secrets` on a log written around them."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import sqlite3
import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import secret_workflows as sw
from cli_helpers import vigil
from kernel.codec import canonical_hash, encode
from kernel.events import Patch, RunStarted, StepCompleted
from kernel.graph import END, START, Graph
from kernel.redact import key_kind, recordable, redact
from kernel.secrets import Secret
from kernel.store import Store
from kernel.tools import tool
from runtime_helpers import pending, run, runtime

PLACE = "run input"


def test_every_kind_is_redacted_and_says_what_it_was():
    text = redact(sw.text_form(PLACE))
    for value in sw.secrets_for(PLACE).values():
        assert value not in text
    for kind in ("openai-key", "anthropic-key", "aws-access-key", "aws-secret", "github-token",
                 "slack-token", "google-api-key", "jwt", "bearer", "private-key", "password",
                 "token", "api-key", "authorization", "secret"):
        assert f"[REDACTED:{kind}]" in text, kind
    assert "postgres://app:[REDACTED:password]@db.example.com:5432/app" in text  # user and host stay


@pytest.mark.parametrize("key", ["password", "db_password", "Passwd", "token", "githubToken", "api_key",
                                 "apiKey", "X-Api-Key", "secret", "client_secret", "Authorization",
                                 "aws_secret_access_key", "private_key", "credentials", "Cookie"])
def test_a_secret_named_key_hides_any_value(key):
    for value in ("x7", "correct horse battery staple", 123456, b"raw"):
        assert redact({key: value})[key].startswith("[REDACTED:")


@pytest.mark.parametrize("key", ["max_tokens", "input_tokens", "token_count", "tokens", "keyboard",
                                 "password_hint", "monkey", "author", "secretary"])
def test_ordinary_keys_keep_their_values(key):
    assert key_kind(key) is None
    assert redact({key: "hunter2-plain"}) == {key: "hunter2-plain"}


def test_ordinary_text_is_left_alone_and_not_copied():
    value = {"messages": [{"role": "user", "content": "Refund order 1234 for $50, see https://shop.example.com/o/1234"}],
             "usage": {"input_tokens": 12, "output_tokens": 40}}
    assert redact(value) is value


def test_bytes_are_redacted_as_text_and_stay_bytes():
    out = redact(sw.text_form(PLACE).encode() + b"\xff\xfe binary tail")
    assert isinstance(out, bytes) and out.endswith(b"\xff\xfe binary tail")
    assert sw.secrets_for(PLACE)["openai"].encode() not in out
    assert b"[REDACTED:openai-key]" in out


_fragments = st.sampled_from(
    list(sw.secrets_for(PLACE).values())
    + ["password=", "token: ", "Bearer ", "://u:", "@h", "aws_secret_access_key=", "[REDACTED:x]",
       "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", " ", "=", ":", "sk-", "\n"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragments, st.text(max_size=12)), max_size=12))
def test_redact_is_idempotent(parts):
    """What keeps replay in step: the codec redacts what the driver already redacted, unchanged."""
    text = "".join(parts)
    once = redact(text)
    assert redact(once) == once
    data = {"password": text, "t": text, "nested": [text, {"api_key": text}]}
    assert redact(redact(data)) == redact(data)


def test_a_secret_never_shows_its_value():
    s = Secret(sw.secrets_for(PLACE)["openai"])
    value = s.reveal()
    assert s.kind == "openai-key"
    for shown in (str(s), repr(s), f"{s}", f"{s!r}", "%s" % s, json.dumps(recordable({"k": s}))):
        assert value not in shown and "[REDACTED:openai-key]" in shown
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert copy.deepcopy({"k": s})["k"] is s
    assert Secret("hunter2").kind == "secret" and Secret("x", kind="pin").marker == "[REDACTED:pin]"
    # encoded anywhere, only the marker: an event body and a hash
    body, _ = encode(RunStarted(graph="g", input={"k": s}))
    assert value.encode() not in body and b"[REDACTED:openai-key]" in body
    assert canonical_hash({"k": s}) == canonical_hash({"k": "[REDACTED:openai-key]"})


def test_a_patch_key_names_its_value():
    event = StepCompleted(step_id="1.a", node="a", update=(Patch("set", "db_password", "plain-words"),))
    body, _ = encode(event)
    assert b"plain-words" not in body and b"[REDACTED:password]" in body


@tool(requires_approval=True, idempotent=True)
async def deploy(target: str, api_key: str, replicas: int = 1) -> dict:
    RECEIVED.append({"target": target, "api_key": api_key, "replicas": replicas})
    return {"ok": True}


RECEIVED: list = []
KEY = sw.secrets_for("tool args Secret")["openai"]


def _deploy_graph() -> Graph:
    g = Graph("deployer", tools=[deploy])

    async def go(state, ctx):
        out = await ctx.tool("deploy", target="prod", api_key=Secret(KEY))
        note = await ctx.interrupt("done?", {"out": out})
        return {"out": out, "note": note}

    g.add_node("go", go)
    g.add_edge(START, "go")
    g.add_edge("go", END)
    return g


def test_an_edit_keeps_the_secret_the_approver_saw_as_a_marker(db):
    """The approver edits another argument; the tool still runs with the real key, and after a
    restart (replay from the log, another Runtime) the run goes on without diverging."""
    RECEIVED.clear()
    g = _deploy_graph()

    async def first():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("deployer", {})
            await rt.settle()
            ask = pending(rt, run_id)[0]
            assert ask.payload["args"] == {"target": "prod", "api_key": "[REDACTED:openai-key]", "replicas": 1}
            edited = {**ask.payload["args"], "replicas": 3}
            await rt.resolve(run_id, ask.interrupt_id, "edit", edited, payload_hash=ask.payload_hash)
            await rt.settle()
            return run_id

    async def second(run_id):
        async with runtime(db, g) as (store, rt):
            await rt.adopt(run_id, drive=False)
            ask = pending(rt, run_id)[0]
            await rt.resolve(run_id, ask.interrupt_id, "answer", "yes", payload_hash=ask.payload_hash)
            await rt.settle()
            return (await store.run(run_id)).status

    run_id = run(first())
    assert RECEIVED == [{"target": "prod", "api_key": KEY, "replicas": 3}]
    assert run(second(run_id)) == "completed"
    assert len(RECEIVED) == 1  # replayed from the log, not run again
    assert KEY.encode() not in _raw(db)
    assert vigil("verify", db=db).returncode == 0


def test_verify_secrets_names_what_an_older_vigil_wrote(db):
    """A log written around the codec (an older vigil, a bug): the scan names run, seq and place."""
    s = sw.secrets_for("run input")

    async def make():
        async with await Store.open(db) as store:
            await store.append("leaky", [RunStarted(graph="g", input={"n": 1})], expected_seq=0)
            await store.append("clean", [RunStarted(graph="g", input={"n": 2})], expected_seq=0)

    run(make())
    body = msgspec.msgpack.encode({"type": "RunStarted", "graph": "g", "input": {"password": s["password"], "note": f"key {s['openai']}"}})
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET body = ?, crc = ? WHERE run_id = 'leaky'", (body, zlib.crc32(body)))
    conn.execute("UPDATE runs SET labels = ?, error = ? WHERE run_id = 'leaky'",
                 (json.dumps({"token": s["token"]}), f"failed with {s['github']}"))
    conn.execute("INSERT INTO signals(run_id, kind, body, created_ns) VALUES ('leaky', 'resolve', ?, 0)",
                 (json.dumps({"value": f"Bearer {s['bearer']}"}),))
    conn.commit()
    conn.close()

    out = vigil("verify", "--secrets", db=db)
    assert out.returncode == 1
    lines = out.stdout.decode().splitlines()
    assert "run leaky seq 1 RunStarted input.password: looks like a secret (password)" in lines
    assert "run leaky seq 1 RunStarted input.note: looks like a secret (openai-key)" in lines
    assert "run leaky runs row labels.token: looks like a secret (token)" in lines
    assert "run leaky runs row error: looks like a secret (github-token)" in lines
    assert any(line.startswith("run leaky signal 1 body.value") and "(bearer)" in line for line in lines)
    assert not any(value in out.stdout.decode() + out.stderr.decode() for value in s.values())
    assert out.stderr.decode().strip() == "vigil: 5 things that look like secrets in 1 run(s)"

    clean = vigil("verify", "--secrets", "clean", db=db)
    assert clean.returncode == 0 and clean.stdout.decode().startswith("no secrets found")


def test_the_codecs_quick_check_folds_case_as_the_rules_do():
    """`seal` skips the walk over an event whose bytes no rule can match; the rules lower-case
    keys with str.lower(), which folds more than ASCII (the Kelvin sign K to k): a key the rules
    call a token must not slip past the quick check because its bytes are not ASCII."""
    from kernel.codec import seal

    key = "TO\u212aEN"  # TOKEN, its K the Kelvin sign
    assert key_kind(key) == "token"
    event = RunStarted(graph="g", input={key: "abcdefabcdefabcdefabcdef0123", "note": "caf\u00e9"})
    sealed, body, _ = seal(event)
    assert b"abcdefabcdef" not in body
    assert sealed.input[key] == "[REDACTED:token]" and sealed.input["note"] == "caf\u00e9"


def test_verify_secrets_looks_inside_artifacts(db):
    """`ctx.artifact` stores the bytes it is given as they are (they may be a PDF, an image): the
    scan reads them too, and names the run and seq that reference one holding a secret."""
    from kernel.events import ArtifactStored

    s = sw.secrets_for("run input")

    async def make():
        async with await Store.open(db) as store:
            leaky = await store.put_artifact(f"report\nkey {s['openai']}\n".encode(), "text/plain")
            clean = await store.put_artifact(b"nothing to see", "text/plain")
            for run_id, info in (("leaky", leaky), ("clean", clean)):
                await store.append(run_id, [
                    RunStarted(graph="g", input={}),
                    ArtifactStored(artifact_id=info.artifact_id, kind="text/plain", size=info.size,
                                   step_id="1.work", action_id="1.work#0"),
                ], expected_seq=0)
            return leaky.artifact_id

    aid = run(make())
    out = vigil("verify", "--secrets", db=db)
    assert out.returncode == 1, out
    assert out.stdout.decode().splitlines() == [f"run leaky seq 2 artifact {aid}: looks like a secret (openai-key)"]
    assert s["openai"] not in out.stdout.decode() + out.stderr.decode()
    clean = vigil("verify", "--secrets", "clean", db=db)
    assert clean.returncode == 0 and clean.stdout.decode().startswith("no secrets found")
    assert vigil("verify", "--secrets", "leaky", db=db).returncode == 1


def test_an_export_holding_a_secret_is_not_imported(db, tmp_path):
    """An export from an older vigil that let a secret through: importing it as is would write
    the secret, and a redacted copy would not be the same events; refused in one line."""
    s = sw.secrets_for("run input")
    event = {"type": "RunStarted", "graph": "g", "graph_version": "1", "input": {"note": s["openai"]},
             "update": [], "parent_run_id": None, "parent_seq": None, "lineage": None, "labels": {},
             "start_at": []}
    body = msgspec.msgpack.encode(event)
    line = {"run_id": "old", "seq": 1, "ts_ns": 1, "type": "RunStarted", "crc": zlib.crc32(body), "event": event}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(line) + "\n")
    out = vigil("import", str(path), db=db)
    assert out.returncode == 2
    assert out.stderr.decode().strip() == (
        "vigil: line 1 (seq 1): holds what looks like a secret, which vigil does not write; "
        "`vigil verify --secrets` on the source log names it"
    )
    assert not db.exists() or s["openai"].encode() not in db.read_bytes()


def test_a_secret_put_straight_into_an_event_is_projected_as_its_marker(db):
    """Labels and titles are copied into the runs and interrupts rows: a Secret there is written
    (and projected) as its marker, never as its value, and nothing crashes on it."""
    value = sw.secrets_for("run labels")["openai"]

    async def go():
        async with await Store.open(db) as store:
            await store.append("r", [RunStarted(graph="g", labels={"key": Secret(value)})], expected_seq=0)
            return await store.run("r")

    info = run(go())
    assert info.labels == {"key": "[REDACTED:openai-key]"}
    assert value.encode() not in _raw(db)


def _raw(db) -> bytes:
    """The database's bytes and its -wal's (gone after the last clean close: checkpointed)."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_redact_is_idempotent_when_one_match_hides_another():
    # found by the property above in CI: a key in a URL's scheme position, its password taken first
    key = "sk-proj-AAAQA1b2C3d4E5f6G7h8I9j0K1l2"
    once = redact(f"{key}://u:{key}@h")
    assert redact(once) == once and key not in once


@pytest.mark.parametrize("text", ["pa\u017f\u017fword=hunter2hunter2", "ap\u0131_key=hunter2hunter2",
                                  "TO\u212aEN: hunter2hunter2"])
def test_the_quick_checks_fold_as_the_rules_ignorecase_does(text):
    """The text rules match names case-insensitively as Python's re does, which takes the long s
    (U+017F) for s, the dotless i (U+0131) for i and the Kelvin sign for k: `pa\u017f\u017fword=...`
    is a password to them. The quick checks only lower-cased, so they skipped the rules for it
    and the value was written as given."""
    from kernel.codec import seal

    assert "hunter2" not in redact(text)
    sealed, body, _ = seal(RunStarted(graph="g", input={"note": text}))
    assert b"hunter2" not in body and "hunter2" not in sealed.input["note"]


# Pieces the property below builds text from: every literal of the quick checks, names the rules
# know, real secrets, the characters that fold into ASCII, msgpack-looking bytes, separators.
_FOLDS = {"s": "\u017f", "i": "\u0131", "k": "\u212a", "I": "\u0130"}
_PIECES = [*sw.secrets_for(PLACE).values(), "password", "api_key", "password=hunter2", "apikey: hunter2",
           "Bearer ", "=", ": ", "\"", "_",
           "-", " ", "\t", "x", "token", "tokens", "input_tokens", "ASIA", "AKIAABCDEFGHIJKLMNOP",
           "://u:p@h", "caf\u00e9", "\u00df", "\U0001f600", "\udc80"]


@st.composite
def _texts(draw):
    from kernel.redact import _LITERALS

    out = []
    for _ in range(draw(st.integers(0, 6))):
        piece = draw(st.sampled_from(_PIECES + _LITERALS) | st.text(max_size=8))
        case = draw(st.sampled_from(["as is", "upper", "swap", "fold", "dotted"]))
        if case == "upper":
            piece = piece.upper()
        elif case == "swap":
            piece = piece.swapcase()
        elif case == "fold":
            piece = "".join(_FOLDS.get(c, c) for c in piece)
        elif case == "dotted":  # lower() makes \u0130 two characters
            piece = piece.replace("i", "\u0130").replace("I", "\u0130")
        out.append(piece)
    return "".join(out)


@settings(max_examples=600, deadline=None)
@given(key=_texts(), text=_texts(), number=st.integers(-200, 200))
def test_the_quick_checks_never_skip_what_the_rules_find(key, text, number):
    """The quick checks decide whether the rules run at all, so they must say yes wherever a rule
    or a key name finds something (`secrets_in` runs the rules with no quick check), for the
    text alone and for an event's encoded bytes, whatever the case, folding or msgpack bytes."""
    from kernel.codec import _encoder
    from kernel.redact import _QUICK, may_hold_secrets, secrets_in

    found = list(secrets_in(text))
    if found:
        assert _QUICK.search(text.lower()), (text, found)
    raw = text.encode("utf-8", "surrogateescape")  # bytes values may hold any byte
    key = key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # text may not
    value = {key: number, "note": raw.decode("utf-8", "replace"), "raw": raw}
    if list(secrets_in(value)):
        assert may_hold_secrets(_encoder.encode(RunStarted(graph="g", input=value)))


_PHRASES = [*sw.secrets_for(PLACE).values(), "password=hunter2hunter2", "apikey: hunter2hunter2",
            "Authorization: Basic aGVsbG8=", "Bearer abcdefghijklmnop0123", "session_token=abcdefgh",
            "private_key = abcdefgh", "https://user:hunter2@example.com/"]
_CASES = {"as is": str, "upper": str.upper, "swapcase": str.swapcase, "title": str.title,
          "folded": lambda s: "".join(_FOLDS.get(c, c) for c in s),
          "dotted": lambda s: s.replace("i", "\u0130")}


@pytest.mark.parametrize("case", list(_CASES))
def test_the_quick_checks_say_yes_to_every_phrase_the_rules_find(case):
    """The same promise as above, every phrase in every case (the random one may miss a few)."""
    from kernel.codec import _encoder
    from kernel.redact import _QUICK, may_hold_secrets, secrets_in

    for phrase in map(_CASES[case], _PHRASES):
        if not list(secrets_in(phrase)):
            continue
        assert _QUICK.search(phrase.lower()), phrase
        for value in ({"note": phrase}, {phrase.split("=")[0].split(":")[0]: 1}):
            if list(secrets_in(value)):
                assert may_hold_secrets(_encoder.encode(RunStarted(graph="g", input=value))), value


def test_a_token_numbered_115_is_caught_whatever_its_key_looks_like():
    """In msgpack the key "token" with the value 115 reads "tokens" (115 is "s"), as the usage
    counts of every model call do: an exception for those counts in the quick check (tried this
    session, withdrawn after a review found bytes keys that passed it) must never hide these."""
    from kernel.codec import seal

    for key in ("token", "input_token", "session_token", "\u20acinput_token", "\u00acinput_token", "\u0bacinput_token"):
        sealed, body, _ = seal(RunStarted(graph="g", input={key: 115, "n": 1}))
        assert sealed.input[key] == "[REDACTED:token]", key


@settings(max_examples=300, deadline=None)
@given(key=_texts(), text=_texts(), number=st.integers(-200, 200))
def test_recordable_skips_the_walk_only_where_the_walk_changes_nothing(key, text, number):
    """`recordable` walks a value only if its encoding may hold a secret: the same result as
    walking every value, for values built to hold secrets, near-secrets and odd characters."""
    import kernel.redact as r

    raw = text.encode("utf-8", "surrogateescape")
    value = {key: number, "note": text, "raw": raw, "list": [text, {text: key}]}
    walked = msgspec.to_builtins(redact(msgspec.to_builtins(value, builtin_types=(bytes,))))
    assert r.recordable(value) == walked


@pytest.mark.parametrize("text", ["pr\u0130vate_key=hunter2hunter2", "credent\u0130als=hunter2hunter2",
                                  "pwd=qzq", "PWD: x1", "token=zq"])
def test_what_the_rules_match_is_redacted_in_text_and_bytes(text):
    """Found by a review: lower() makes the dotted capital I two characters (i and a combining
    dot), which split the quick check's literal while re's IGNORECASE still takes it for i; and
    strings under 8 characters were never checked, though `pwd=qzq` is a password to the rules."""
    from kernel.codec import seal
    from kernel.redact import secrets_in

    assert list(secrets_in(text))
    secret = text.split("=")[-1].split(": ")[-1]
    assert secret not in redact(text)
    sealed, body, _ = seal(RunStarted(graph="g", input={"note": text, "raw": text.encode()}))
    assert secret.encode() not in body


@pytest.mark.parametrize("key", ["xoxb-HUNTER2HUNTER2", "TOKEN:PRIVATEghp_://:"])
def test_redacting_a_key_twice_changes_nothing_more(key):
    """A key shaped like a secret is redacted to a marker, and a marker (or the text around it)
    can read as a secret's name: the value under it must be judged by the key as it will be
    written, or the codec's second redaction would differ from the driver's first (a replay
    compares the two)."""
    once = redact({key: 1})
    assert redact(once) == once
    assert list(once) != [key]


def test_patterns_of_your_own_redact_short_strings_and_whole_events(tmp_path):
    """VIGIL_REDACT's patterns (read when vigil starts) apply to every string, however short
    (the built-in rules' shortest match is 5 characters; yours may be shorter), in events too."""
    import os
    import subprocess
    import sys

    code = (
        "from kernel.codec import seal\n"
        "from kernel.events import RunStarted\n"
        "from kernel.redact import redact\n"
        "assert redact('hunter2') == '[REDACTED:custom]', redact('hunter2')\n"
        "_, body, _ = seal(RunStarted(graph='g', input={'a': 'hunter7', 'b': 'note: hunter3 said'}))\n"
        "assert b'hunter' not in body, body\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "VIGIL_REDACT": "hunter\\d"},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("value", [
    {"sk-proj-abcdefghijklmnopqrstuvwx_token": "hunter2"},
    {"Bearer abcdefghijklmnop-token": "hunter2"},
    {"sk-ant-abcdefghijklmnopqrstuvwx-api-key": "hunter2"},
    {"eyJhbGciOiJI.eyJzdWIiOiIx.sig_secret": "hunter2"},
    {"password": {"token=hunter2": 1}},
    {b"password=hunter2": 1},
    {b"db_password": "hunter2"},
])
def test_keys_hide_nothing_and_redacting_twice_changes_nothing(value):
    """Found by a second review. A key that names a secret and holds one too: once the key's
    secret is redacted, what is left names nothing, and the value under it was written as given.
    Keys nested under a secret-named key, and bytes keys, were never redacted at all."""
    from kernel.codec import seal

    once = redact(value)
    assert redact(once) == once
    sealed, body, _ = seal(RunStarted(graph="g", input=value))
    assert b"hunter2" not in body, body


def test_a_state_key_and_a_secrets_own_kind_are_redacted_once_and_for_all():
    """A patch's key is text like any other; a Secret given a kind that itself reads as a secret
    made a marker the rules then changed on a second pass."""
    from kernel.secrets import Secret

    patch = redact(Patch("set", "pwd=hunter2", 1))
    assert "hunter2" not in patch.key and redact(patch) == patch
    shown = redact(Secret("v", kind="pwd=hunter2"))
    assert "hunter2" not in shown and redact(shown) == shown


@settings(max_examples=400, deadline=None)
@given(key=_texts(), text=_texts(), number=st.integers(-200, 200))
def test_redacting_twice_is_redacting_once(key, text, number):
    """The driver hands nodes the redacted form and the codec redacts it again on the way to the
    log; a replay compares the two, so a second pass must never change anything."""
    raw = text.encode("utf-8", "surrogateescape")
    value = {key: {text: [text, raw, number]}, text: number, raw: key, "n": {key: text}}
    once = redact(value)
    assert redact(once) == once


def test_the_rules_take_linear_time_on_text_built_to_make_them_backtrack():
    """Found by a third review: the AWS rule backtracked in cubic time over an identifier full of
    "aws" and "key" (12 KB of `awskey` took 288 s in seal, stalling the writer), the URL rule in
    quadratic time over a long `a.a.a...`. In a subprocess so a regression fails rather than
    hangs the suite; the bound is two orders of magnitude above what it takes now."""
    import subprocess
    import sys

    code = (
        "from kernel.codec import seal\n"
        "from kernel.events import RunStarted\n"
        "for text in ('awskey' * 2000, 'aws_' * 6000, 'pass ' + 'a.' * 100000, 'x' + 'awssecret' * 1500):\n"
        "    seal(RunStarted(graph='g', input={'note': text}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the rules still find what they found: an AWS secret after its name, a password in a URL
    found = redact("my_aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'")
    assert "wJalrXUtnFEMI" not in found and "[REDACTED:aws-secret]" in found
    assert redact("x.postgres://app:hunter2@db/app") == "x.postgres://app:[REDACTED:password]@db/app"


@pytest.mark.parametrize("value", [
    {"password": "[REDACTED sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaaaaaa]"},
    {"password": "[REDACTED]hunter2]"},
    {__import__("kernel.secrets").secrets.Secret("x", "password"): "hunter2"},
    {b"\xacinput_token": 115},
    {b"\x00\xacINPUT_TOKEN": 83},
])
def test_what_only_looks_redacted_is_redacted(value):
    """Found by a third review: under a secret-named key a string that merely starts with
    `[REDACTED` and ends with `]` was kept whole; a Secret used as a key named nothing; and the
    quick check's exception for usage counts took a bytes key's raw 0xac for a string's header
    (and lower() made the value 83, "S", into "s"), so the value under `input_token` was kept."""
    from kernel.codec import seal

    sealed, body, _ = seal(RunStarted(graph="g", input=value))
    for secret in (b"hunter2", b"sk-ant-api03"):
        assert secret not in body
    assert b"[REDACTED:token]" in body or b"[REDACTED:password]" in body or b"[REDACTED:anthropic-key]" in body


class _Account(msgspec.Struct):
    password: str
    note: str = ""


def _odd_values():
    import dataclasses
    import enum

    @dataclasses.dataclass
    class Login:
        password: str

    class Kind(enum.Enum):
        KEY = "sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaa"

    key = "sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaa"
    return [{key}, frozenset({key}), Login("hunter2"), _Account("hunter2"), {"password": _Account("x1x1x1")},
            {"password": {"hunter2"}}, Kind.KEY, [_Account("p", note=f"key {key}")]]


@pytest.mark.parametrize("value", _odd_values(), ids=lambda v: type(v).__name__)
def test_values_of_other_types_are_redacted_as_the_encoder_writes_them(value):
    """Found by a third review: the walk passed over sets, dataclasses and Enum values, and read
    no Struct field name as a key name, though the encoder writes them all: an event built with
    them by hand (`Store.append`) carried the secret to the log."""
    from kernel.codec import seal

    sealed, body, _ = seal(RunStarted(graph="g", input={"v": value}))
    for secret in (b"hunter2", b"sk-ant-api03", b"x1x1x1"):
        assert secret not in body, body
    sealed, body, _ = seal(StepCompleted(step_id="1.a", node="a", update=(Patch("set", "v", value),),
                                         next=(), state_hash=""))
    for secret in (b"hunter2", b"sk-ant-api03", b"x1x1x1"):
        assert secret not in body, body
