"""Ed25519 signatures on the audit store's retention records and checkpoints.

Whoever can write the store can append to it and re-chain it; only the holder of the signing
key can sign. With a key configured (``PLACEWATCH_AUDIT_SIGNING_KEY``, or the file named by
``audit_signing_key_file``), every legal hold, release and purge record carries a signature
of its own content and position, and every checkpoint (every 1,000 records, after each
retention record, and at shutdown) is signed and, with ``audit_witness_path`` set, appended to
that file outside the data directory. ``placewatch audit verify --public-key`` then rejects an
unsigned or wrongly signed retention record, an unsigned, wrongly signed or missing checkpoint,
and (with ``--witness``) a store that disagrees with any checkpoint the witness holds.

What is signed (UTF-8, fields separated by a NUL byte), with the ``cryptography`` library's
Ed25519:

- a retention record: ``placewatch-record-v1``, the previous record's hash, its ``seq``, and
  its canonical body without the ``signature`` field (which then holds the signature, base64);
- a checkpoint: ``placewatch-checkpoint-v1``, its ``seq`` and the chain's hash there.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streams.errors import ConfigError, PlacewatchError

__all__ = ["KEY_ENV", "Signer", "Verifier", "checkpoint_message", "generate_key",
           "load_signer", "load_verifier", "read_witness", "record_message", "unsigned_body"]

KEY_ENV = "PLACEWATCH_AUDIT_SIGNING_KEY"
"""The environment variable that may hold the signing key (base64 of its 32 raw bytes)."""


def record_message(prev_hash: str, seq: int, unsigned: bytes) -> bytes:
    return b"\x00".join((b"placewatch-record-v1", prev_hash.encode(), str(seq).encode(),
                         unsigned))


def checkpoint_message(seq: int, chain_hash: str) -> bytes:
    return b"\x00".join((b"placewatch-checkpoint-v1", str(seq).encode(), chain_hash.encode()))


def unsigned_body(body: bytes) -> tuple[bytes, str | None]:
    """A record body without its ``signature`` field (canonical), and the signature."""
    data = orjson.loads(body)
    signature = data.pop("signature", None)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS), (
        signature if isinstance(signature, str) else None)


class Signer:
    """Signs with an Ed25519 private key (never logged, never written by placewatch)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._key.sign(message)).decode()

    @property
    def public_key(self) -> str:
        """The public half, base64 of its 32 raw bytes: what an auditor verifies with."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()


class Verifier:
    """Checks signatures with an Ed25519 public key."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    def valid(self, message: bytes, signature: str | None) -> bool:
        if not signature:
            return False
        try:
            self._key.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{what}: expected base64 of 32 raw Ed25519 key bytes (as "
                          "placewatch audit keygen writes)")
    return raw


def generate_key() -> tuple[str, str]:
    """A new key pair: ``(private, public)``, each base64 of its 32 raw bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return base64.b64encode(private).decode(), Signer(key).public_key


def load_signer(key_file: Path | None, environ: dict[str, str] | None = None) -> Signer | None:
    """The signing key from the environment, else from ``key_file``; None when neither is set.
    A key file others can read is refused."""
    env = os.environ if environ is None else environ
    text = env.get(KEY_ENV)
    what = KEY_ENV
    if not text and key_file is not None:
        try:
            if key_file.stat().st_mode & 0o077:
                raise ConfigError(f"audit_signing_key_file: {key_file} is readable by others; "
                                  f"chmod 600 it")
            text = key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"audit_signing_key_file: cannot read {key_file}: "
                              f"{exc.strerror or exc}") from exc
        what = f"audit_signing_key_file {key_file}"
    if not text:
        return None
    return Signer(Ed25519PrivateKey.from_private_bytes(_raw(text, what)))


def _one_store(lines: list[dict[str, object]], store_id: str | None, what: str
              ) -> list[dict[str, object]]:
    """The witness lines of one store: those naming ``store_id``, or, without one, every
    line, provided they do not name several stores (a dump of the Kafka audit topic does:
    which store is which is for the auditor to say, not the store under check)."""
    named = sorted({str(line["store_id"]) for line in lines
                    if line.get("store_id") is not None})
    if store_id is not None:
        chosen = [line for line in lines if line.get("store_id") == store_id]
        if not chosen:
            raise PlacewatchError(f"{what}: no checkpoint of store_id {store_id} (it holds "
                                  f"{', '.join(named[:5]) or 'no store_id'})")
        return chosen
    if len(named) > 1:
        raise PlacewatchError(f"{what}: it holds the checkpoints of {len(named)} stores "
                              f"(store_id {', '.join(named[:5])}): give audit verify "
                              "--witness-store-id with the store's, as its run's log or the "
                              "Kafka message keys name it, and each store its own "
                              "audit_witness_path")
    return lines


def read_witness(path: Path, what: str, store_id: str | None = None
                 ) -> list[dict[str, object]]:
    """The checkpoints of one store that a witness file holds, one JSON object a line
    (:func:`_one_store`); ``what`` names the option or setting in the error when it cannot
    be read or is not that."""
    try:
        found = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    except (OSError, orjson.JSONDecodeError) as exc:
        raise PlacewatchError(f"{what}: cannot read {path} as JSON lines of checkpoints: "
                              f"{exc}") from exc
    if not all(isinstance(line, dict) for line in found):
        raise PlacewatchError(f"{what}: {path} holds a line that is not a checkpoint")
    return _one_store(found, store_id, f"{what} {path}")


def load_verifier(public_key: str) -> Verifier:
    """A verifier from a public key: base64 of its 32 raw bytes, or a file holding that."""
    path = Path(public_key)
    text = public_key
    if len(public_key) != 44 and path.is_file():
        text = path.read_text()
    return Verifier(Ed25519PublicKey.from_public_bytes(_raw(text, "--public-key")))
