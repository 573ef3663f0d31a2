"""Signed reports: HMAC-SHA256 over a record's exact value bytes (docs/security.md#signed-reports).

Headers: `ceasefire-key-id` names the key (its owner is in the source registry), `ceasefire-signature`
is `sha256=` and the 64 hex digits of the HMAC. Secrets come from a file or a directory (setting
`CEASEFIRE_SOURCE_KEYS_PATH`), are held as `SecretStr` and never logged, put in a record or a label.
Pure: no Kafka; the verdict is a message saying what is wrong, or None.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import SecretStr

from schemas.source import KEY_ID_PATTERN, Source, SourceRegistry

KEY_ID_HEADER = "ceasefire-key-id"
SIGNATURE_HEADER = "ceasefire-signature"
SCHEME = "sha256="
MIN_SECRET_CHARS = 16
_KEY_ID = re.compile(KEY_ID_PATTERN).fullmatch
_HEX64 = re.compile(r"[0-9a-fA-F]{64}").fullmatch
Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None
Keyring = Mapping[str, SecretStr]


def sign(value: bytes, secret: str) -> str:
    """The `ceasefire-signature` header of `value` under `secret` (the key's UTF-8 bytes)."""
    return SCHEME + hmac.new(secret.encode(), value, hashlib.sha256).hexdigest()


def signature_headers(key_id: str, signature: str) -> list[tuple[str, bytes]]:
    """The record headers that carry a signature (`sign`'s result) made with key `key_id`."""
    return [(KEY_ID_HEADER, key_id.encode()), (SIGNATURE_HEADER, signature.encode())]


def load_keys(path: Path | None) -> dict[str, SecretStr]:
    """Key id → secret. A directory holds one file per key, named by its id, the secret its content
    (as Docker and Kubernetes mount secrets); a file is a YAML mapping of key id to secret. Trailing
    newlines are not part of a secret."""
    if path is None:
        return {}
    if not path.exists():
        raise ValueError(f"signing keys: {path} does not exist (CEASEFIRE_SOURCE_KEYS_PATH)")
    if path.is_dir():
        entries = {p.name: p.read_text(encoding="utf-8") for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")}
    else:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a keys file is a mapping of key id to secret")
        entries = {str(k): str(v) for k, v in loaded.items()}
    keys: dict[str, SecretStr] = {}
    for key_id, secret in entries.items():
        if not _KEY_ID(key_id):
            raise ValueError(f"{path}: {key_id!r} is not a key id ({KEY_ID_PATTERN})")
        keys[key_id] = SecretStr(_secret(path, key_id, secret))
    return keys


def read_key_file(path: Path) -> tuple[str, str]:
    """(key id, secret) of one key file, as `ceasefire post --sign KEYFILE` takes it: the id is the
    file's name, the secret its content."""
    if not path.is_file() or not _KEY_ID(path.name):
        raise ValueError(f"{path}: not a key file (its name is the key id, its content the secret)")
    return path.name, _secret(path, path.name, path.read_text(encoding="utf-8"))


def _secret(path: Path, key_id: str, text: str) -> str:
    """A secret as read: without its trailing newlines, at least MIN_SECRET_CHARS long (the error names
    the key, never the secret)."""
    secret = text.rstrip("\r\n")
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{path}: the secret of key {key_id} is shorter than {MIN_SECRET_CHARS} characters")
    return secret


def header(headers: Headers, name: str) -> bytes | None:
    """The last value of header `name` (a repeated header: the last one counts, as Kafka clients read it)."""
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: bytes | None = None
    for key, value in pairs:
        if key.lower() == name:
            found = value if value is not None else b""
    return found


def signature_problem(
    value: bytes, headers: Headers, source: Source | None, sources: SourceRegistry | None, keys: Keyring
) -> str | None:
    """What is wrong with the record's signature, or None. `source`: the registry's entry of the
    report's source (None: not registered). A signature must be good whenever one comes; it must come
    when the source's signing is required."""
    key_id_raw, signature_raw = header(headers, KEY_ID_HEADER), header(headers, SIGNATURE_HEADER)
    required = source is not None and source.signing == "required"
    if key_id_raw is None and signature_raw is None:
        return f"source {source.id} must sign its reports: no {SIGNATURE_HEADER} header" if required and source else None
    if key_id_raw is None or signature_raw is None:
        missing = KEY_ID_HEADER if key_id_raw is None else SIGNATURE_HEADER
        return f"a signed record needs both headers: {missing} is missing"
    try:
        key_id, signature = key_id_raw.decode("ascii"), signature_raw.decode("ascii")
    except UnicodeDecodeError:
        return "the signature headers are not ASCII"
    if not _KEY_ID(key_id):
        return f"{KEY_ID_HEADER} is not a key id ({KEY_ID_PATTERN})"
    owner = None if sources is None else sources.key_owner(key_id)
    if owner is None or source is None or owner is not source:
        return f"key {key_id} is not a key of the report's source"
    if not signature.startswith(SCHEME) or not _HEX64(signature[len(SCHEME) :]):
        return f"{SIGNATURE_HEADER} must be {SCHEME}<64 hex digits>"
    secret = keys.get(key_id)
    if secret is None:
        return f"key {key_id} is registered but this service holds no secret for it"
    expected = sign(value, secret.get_secret_value())
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        return f"the signature does not match the record's bytes under key {key_id}"
    return None
