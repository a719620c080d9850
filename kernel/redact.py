"""What looks like a secret is replaced by `[REDACTED:<kind>]` before anything reaches the disk.

Two kinds of rule, applied to every string, bytes value and dict anywhere in a value:
- patterns: API keys and tokens with a recognisable shape, private keys, JWTs, bearer tokens,
  passwords in URLs (`scheme://user:[REDACTED:password]@host`), and `name=value` / `name: value`
  in free text when the name is secret-like (`password=...`, `aws_secret_access_key=...`);
- key names: a dict key (or state key) named like password, token, api_key, secret,
  authorization, private_key, credentials, cookie... has its value redacted whatever its shape.

`redact` is idempotent (a marker never matches a rule), which is what keeps a replay in step
with the live run: the driver hands nodes the redacted form, the codec redacts again on encode,
and both agree. Extra patterns: env VIGIL_REDACT (regexes, one a line) or add_pattern().
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any, Iterator

import msgspec

from .events import Patch
from .secrets import Secret

__all__ = ["redact", "recordable", "marker", "kind_of", "key_kind", "secrets_in", "add_pattern",
           "may_hold_secrets", "REDACTED"]

REDACTED = "[REDACTED"  # every marker starts with this


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


_MARKER = re.compile(r"\[REDACTED:[^\[\]]*\]")


# The names a secret goes by, as dict keys (after camelCase -> snake_case) and before `=`/`:` in
# text. A normalized key is secret if it is one of these or ends with `_` + one of these, so
# `db_password`, `githubToken`, `X-Api-Key` are secret while `max_tokens`, `token_count` are not.
_KEY_KINDS = {
    "password": "password", "passwd": "password", "pwd": "password", "passphrase": "password",
    "token": "token", "api_key": "api-key", "apikey": "api-key", "api_token": "api-key",
    "secret": "secret", "secret_key": "secret", "secret_access_key": "aws-secret",
    "access_key": "access-key", "private_key": "private-key", "authorization": "authorization",
    "credential": "credential", "credentials": "credential", "cookie": "cookie",
}
_KEY_RULE = re.compile(
    r"(?:^|_)(" + "|".join(sorted(map(re.escape, _KEY_KINDS), key=len, reverse=True)) + r")$"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_key_cache: dict[str, str | None] = {}


def key_kind(key: str) -> str | None:
    """The kind of secret a dict key names, or None."""
    kind = _key_cache.get(key, False)
    if kind is not False:
        return kind
    norm = _SEPARATORS.sub("_", _CAMEL.sub("_", key).lower()).strip("_")
    m = _KEY_RULE.search(norm)
    kind = None
    if m:
        kind = _KEY_KINDS[m.group(1)]
        if kind == "secret" and "aws" in norm:
            kind = "aws-secret"
    if len(_key_cache) > 10_000:  # keys repeat; a run with ever-new keys must not grow this forever
        _key_cache.clear()
    _key_cache[key] = kind
    return kind


_TEXT_KEYS = r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|private[_-]?key|authorization|credentials?"

# (kind, regex). A rule with a group named `v` replaces only that group (the rest is context
# worth keeping: the URL's user and host, the `password=` before a value). Kind None: the kind
# comes from the key named in the match. Order matters where two rules match at one place.
# Bytes that are not UTF-8 (surrogates, as surrogateescape decodes them) end a `name=value` value.
_RULES: list[tuple[str | None, str]] = [
    ("private-key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*)"),
    # Each name is read once, from its first character, and never given back (an atomic group,
    # a possessive run): started anew inside a long name, these rules took quadratic and cubic
    # time (12 KB of `awskey` took minutes).
    ("password", r"(?<![A-Za-z0-9+.\-])(?>[A-Za-z0-9+.\-]*?[A-Za-z])[A-Za-z0-9+.\-]*+://[^\s/:@\[\]]*:(?!\[REDACTED)(?P<v>[^\s/@\[\]]+)@"),
    ("aws-secret", r"(?<![A-Za-z0-9_\-])(?i:(?>[A-Za-z0-9_\-]*?aws)[A-Za-z0-9_\-]*?(?:secret|key))[A-Za-z0-9_\-]*+[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
    ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("aws-access-key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("bearer", r"\b(?i:bearer)\s+(?!\[REDACTED)(?P<v>[A-Za-z0-9._~+/=\-]{16,})"),
    (None, rf"(?<![A-Za-z0-9])(?P<k>(?i:{_TEXT_KEYS}))[\"']?[ \t]*[:=][ \t]*[\"']?"
           r"(?!\[REDACTED)(?P<v>(?:(?i:basic|bearer|token|digest)[ \t]+)?[^\s\"',;&\udc80-\udcff]+)"),
]

# A cheap test that is true whenever any rule could match: some literal every rule and every
# secret key name contains (a superset: any case, any separator), looked for in lowered text.
# Most strings and most encoded events have none, and skip the rules (and the walk) at C speed.
_LITERALS = [
    "-----begin", "://", "aws", "sk-", "akia", "asia", "abia", "acca", "ghp_", "gho_", "ghu_",
    "ghs_", "ghr_", "github_pat_", "xox", "aiza", "eyj", "bearer", "pass", "pwd", "secret",
    "token", "api", "private", "access", "authoriz", "credential", "cookie",
    "[redacted:",  # a Secret the encoder wrote as its marker: the event itself must lose it too
    # The rules' (?i:...) is Python's: it takes the long s for s and the dotless i for i, which
    # lower() leaves as they are (`pa\u017f\u017fword=` is a password to the rules).
    "\u017f", "\u0131",
    # lower() turns these into ASCII (K to k, \u0130 to i + a dot), bytes.lower() does not: the
    # bytes check below looks for them as they are.
    "\u212a", "\u0130",
    # What lower() makes of \u0130: i and a combining dot, which split a literal (`pr\u0130vate`)
    # that re's IGNORECASE still matches.
    "i\u0307",
]

# Characters by how often they turn up in what a log holds (English text, msgpack field names
# like type, step_id, output), rarest first; the rest are rarer still.
_COMMON = "[:zjxqvbgywfkmhlucd-pr_ni/soate"


def _anchored(words: list[str]) -> str:
    """An alternation matching any of `words`, each found through its rarest character. re scans
    for the first characters of the branches at C speed and tries branches only there; branches
    starting with common letters (a, s, t, e) stopped it at every other byte of an event. Here
    each branch starts on its word's rarest character, checks the rest of the word forward, then
    the part before behind it: 2.8 us against 1.4 for a 175-byte event."""
    rank = {c: i for i, c in enumerate(_COMMON)}
    groups: dict[str, list[str]] = {}
    for w in words:
        j = min(range(len(w)), key=lambda i: rank.get(w[i], -1))
        rest = re.escape(w[j + 1 :]) + (f"(?<={re.escape(w)})" if j else "")
        groups.setdefault(w[j], []).append(rest)
    parts = []
    for first, rests in sorted(groups.items()):
        if "" in rests:  # the character alone is the word: nothing more to check
            parts.append(re.escape(first))
        else:
            parts.append(re.escape(first) + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})"))
    return "|".join(parts)


_QUICK = re.compile(_anchored(_LITERALS))
_QUICK_BYTES = re.compile(_anchored(_LITERALS).encode())

_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

_extra = [p for p in os.environ.get("VIGIL_REDACT", "").splitlines() if p.strip()]


def _compile() -> tuple[re.Pattern, list[tuple[str | None, str | None, str | None]]]:
    parts, names = [], []
    for i, (kind, rx) in enumerate(_RULES + [("custom", p) for p in _extra]):
        rx = rx.replace("(?P<v>", f"(?P<v{i}>").replace("(?P<k>", f"(?P<k{i}>")
        parts.append(f"(?P<r{i}>{rx})")
        names.append((kind, f"v{i}" if f"(?P<v{i}>" in rx else None, f"k{i}" if f"(?P<k{i}>" in rx else None))
    return re.compile("|".join(parts)), names


_regex, _names = _compile()


def add_pattern(pattern: str) -> None:
    """Redact strings matching `pattern` too (for this process), as `[REDACTED:custom]`."""
    global _regex, _names
    _extra.append(pattern)
    _regex, _names = _compile()


def _kind(m: re.Match) -> tuple[str, str | None]:
    kind, v, k = _names[int(m.lastgroup[1:])]
    if kind is None:
        kind = key_kind(m.group(k)) or "secret"
    return kind, v


def _sub(m: re.Match) -> str:
    kind, v = _kind(m)
    if v is None:
        return marker(kind)
    start, end = m.span(v)
    whole = m.group()
    base = m.start()
    return whole[: start - base] + marker(kind) + whole[end - base:]


def kind_of(text: str) -> str | None:
    """The kind of the first secret-looking thing in `text`, or None."""
    m = _regex.search(text)
    return _kind(m)[0] if m else None


def _text(s: str) -> str:
    # Nothing shorter than `pwd=x` can match a rule (a pattern of your own may: then all run).
    if not _extra and (len(s) < 5 or _QUICK.search(s.lower()) is None):
        return s
    # To a fixpoint: one match can hide another (a key in a URL's scheme, its password taken
    # first), and the codec redacts what the driver already did: both must agree, or a replay
    # would see other text than the live run.
    for _ in range(4):
        out = _regex.sub(_sub, s)
        if out == s:
            return out
        s = out
    return s


def _whole(value: Any, kind: str) -> Any:
    """A value under a secret-named key: all of it goes, whatever its shape."""
    if value is None or value is True or value is False or value == "":
        return value
    if isinstance(value, Secret):
        return value.marker
    if isinstance(value, str):
        found = kind_of(value)
        if found is None and _MARKER.fullmatch(value):  # a marker, and only a marker
            return value
        return marker(found or kind)
    if isinstance(value, dict):
        return {_key(k)[0]: _whole(v, kind) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out = [_whole(v, kind) for v in value]
        return tuple(out) if isinstance(value, tuple) else out
    if isinstance(value, (int, float, bytes, bytearray, memoryview)):
        return marker(kind)
    plain = _as_written(value)  # a set, a Struct, a dataclass...: all of it goes too
    return redact(value) if plain is None else _whole(plain, kind)


def _key(k: Any) -> tuple[Any, str | None]:
    """A dict key (or a state key) as it is written, and the kind of secret it names. Both the
    key as given and as redacted may name one: a rule can swallow the name (`sk-..._token`
    redacted is a marker naming nothing) or make one (a marker reads as `..._token`); either way
    the value goes, and a second redaction finds nothing more to do."""
    if isinstance(k, str):
        nk = _text(k)
        return nk, key_kind(k) or key_kind(nk)
    if isinstance(k, Secret):  # written as its marker, and what it holds is that kind of secret
        return k.marker, k.kind
    if isinstance(k, (bytes, bytearray)):  # a bytes key is text too, as bytes values are
        text = bytes(k).decode("utf-8", "surrogateescape")
        clean = _text(text)
        nk = k if clean is text else clean.encode("utf-8", "surrogateescape")
        return nk, key_kind(text) or key_kind(clean)
    return k, None


def _dict(d: dict) -> dict:
    out = None
    for i, (k, v) in enumerate(d.items()):
        nk, kind = _key(k)
        nv = _whole(v, kind) if kind else redact(v)
        if (nv is not v or nk is not k) and out is None:
            out = dict(list(d.items())[:i])
        if out is not None:
            out[nk] = nv
    return d if out is None else out


def _seq(items: list | tuple) -> list | tuple:
    out = [redact(v) for v in items]
    if all(a is b for a, b in zip(out, items)):
        return items
    return out if isinstance(items, list) else tuple(out)


def _bytes(b: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    # surrogateescape: bytes that are not UTF-8 survive the round trip unchanged.
    text = bytes(b).decode("utf-8", "surrogateescape")
    clean = _text(text)
    return b if clean is text else clean.encode("utf-8", "surrogateescape")


def _struct(s: msgspec.Struct) -> msgspec.Struct:
    changes = {}
    if type(s) is Patch:  # a state change: its key names the value, like a dict key
        key, kind = _key(s.key)
        value = _whole(s.value, kind) if kind else redact(s.value)
        if value is not s.value:
            changes["value"] = value
        if key is not s.key:
            changes["key"] = key
    else:
        # A field is written as a map's key: its name names a secret as a key's does (no event
        # of vigil's has such a field; a Struct of yours in a value may).
        for name in s.__struct_fields__:
            v = getattr(s, name)
            kind = key_kind(name)
            nv = _whole(v, kind) if kind else redact(v)
            if nv is not v:
                changes[name] = nv
    return msgspec.structs.replace(s, **changes) if changes else s


def redact(value: Any) -> Any:
    """`value` with secret-looking parts replaced; containers are copied only if changed."""
    t = type(value)
    if t is str:
        return _text(value)
    if t is dict:
        return _dict(value)
    if t is list or t is tuple:
        return _seq(value)
    if value is None or t is int or t is float or t is bool:
        return value
    if isinstance(value, Secret):
        return value.marker
    if isinstance(value, msgspec.Struct):
        return _struct(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes(value)
    if isinstance(value, str):
        return _text(str.__str__(value))
    if isinstance(value, dict):
        return _dict(value)
    if isinstance(value, (list, tuple)):
        return _seq(value)
    # Anything else the encoder writes (a set, a dataclass, an Enum's value...) is redacted in the
    # form it will be written in; left as it is where nothing in it changes.
    plain = _as_written(value)
    clean = value if plain is None else redact(plain)
    return value if clean is plain else clean


def _as_written(value: Any) -> Any:
    """`value` as builtins, as the encoder would write it; None if it cannot be written."""
    try:
        return msgspec.to_builtins(value, builtin_types=(bytes, bytearray, memoryview), enc_hook=_secret_hook)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        return None


def _secret_hook(obj: Any) -> Any:
    if isinstance(obj, Secret):
        return obj.marker
    raise TypeError(f"Encoding objects of type {type(obj).__name__} is unsupported")


_plain_encoder = msgspec.msgpack.Encoder()
# Every msgpack container starts with one of these bytes (fixmap, fixarray, array and map 16/32),
# so their count (bytes of strings in that range only add to it) bounds how deep a value nests.
_NOT_CONTAINER_HEADERS = bytes(b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF))


def recordable(value: Any) -> Any:
    """The form of a value the log records (and the graph's code sees): builtins, redacted.
    Secrets become their markers; bytes are redacted as text, then base64-encoded as always."""
    plain = msgspec.to_builtins(value, builtin_types=(bytes, bytearray, memoryview), enc_hook=_secret_hook)
    # Most values hold no literal at all: their bytes say so at C speed, and the walk over every
    # string and key (16 us for a model reply) would return `plain` unchanged. Every string, key
    # and bytes value is in the encoding as it is; text that cannot be encoded takes the walk. So
    # does a value that may nest deeper than the walk goes (it is refused there, as before).
    try:
        body = _plain_encoder.encode(plain)
        clean = len(body.translate(None, _NOT_CONTAINER_HEADERS)) <= 100 and not may_hold_secrets(body)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        clean = False
    return msgspec.to_builtins(plain if clean else redact(plain))


def may_hold_secrets(body: bytes) -> bool:
    """False only if no rule can match anything in `body` (an encoded event or row)."""
    if _extra:
        return True
    # The bytes as they are, lowered as ASCII: UTF-8 never uses an ASCII byte inside another
    # character, and the only other characters whose lower() is ASCII (K, \u0130) are literals
    # themselves, so this finds a literal wherever the decoded, lower()ed text holds one.
    return _QUICK_BYTES.search(body.lower()) is not None


def secrets_in(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, kind) for every secret-looking thing in a decoded value (for `verify --secrets`)."""
    if isinstance(value, str):
        for m in _regex.finditer(value):
            yield path, _kind(m)[0]
        if len(value) >= 16 and _BASE64.fullmatch(value):  # bytes are recorded base64-encoded
            try:
                inner = base64.b64decode(value).decode("utf-8")
            except ValueError:
                return
            for where, kind in secrets_in(inner, path):
                yield f"{where} (base64)", kind
    elif isinstance(value, (bytes, bytearray, memoryview)):
        yield from secrets_in(bytes(value).decode("utf-8", "surrogateescape"), path)
    elif isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            kind = key_kind(k) if isinstance(k, str) else None
            if kind and _whole(v, kind) != v:
                yield where, kind
            else:
                yield from secrets_in(k, where)
                yield from secrets_in(v, where)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from secrets_in(v, f"{path}[{i}]")
