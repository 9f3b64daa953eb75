"""Reading the connection passwords an original DanceCats (2016) installation stored.

The original encrypted them under its ``DB_ENCRYPT_KEY`` setting: connections of model
version 1 with RC4 (the key's bytes as the RC4 key, Base64 of the stream), later ones
(version 2 and up) with AES-256 in ECB mode: the key repeated to 32 bytes, the plaintext
led by its byte length as three digits and padded with random Base64 characters to a
multiple of 16, and a random (unused) 16-byte "IV" in front, all Base64-encoded.

Only decryption is here: DanceCat never writes this format. A wrong key is told from a
right one by the format itself (AES: the three length digits and UTF-8; RC4, which has no
structure, by the plaintext being printable UTF-8), and reported without any plaintext.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dancecat_core.errors import DancecatError

AES_KEY_BYTES = 32
AES_BLOCK = 16
FIRST_AES_VERSION = 2


class WrongKey(DancecatError):
    """The stored value does not decrypt under the key given (or is damaged)."""


def _key_bytes(key: str) -> bytes:
    raw = key.encode("utf-8")
    if not raw:
        raise WrongKey("DB_ENCRYPT_KEY is empty")
    return raw


def aes_key(key: str) -> bytes:
    """The original's ``aes_key_pad``: the key repeated until 32 bytes long, then cut."""
    raw = _key_bytes(key)
    while len(raw) < AES_KEY_BYTES:
        raw += raw
    return raw[:AES_KEY_BYTES]


def _printable(text: str) -> bool:
    return all(ch.isprintable() or ch in "\t" for ch in text)


def aes_decrypt(stored: str, key: str) -> str:
    try:
        blob = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        raise WrongKey("not the original's AES format (not Base64)") from None
    body = blob[AES_BLOCK:]
    if not body or len(body) % AES_BLOCK:
        raise WrongKey("not the original's AES format (length)")
    decryptor = Cipher(algorithms.AES(aes_key(key)), modes.ECB()).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    digits = padded[:3]
    if not digits.isdigit() or int(digits) > len(padded) - 3:
        raise WrongKey("does not decrypt under this DB_ENCRYPT_KEY")
    try:
        text = padded[3 : 3 + int(digits)].decode("utf-8")
    except UnicodeDecodeError:
        raise WrongKey("does not decrypt under this DB_ENCRYPT_KEY") from None
    if not _printable(text):
        raise WrongKey("does not decrypt under this DB_ENCRYPT_KEY")
    return text


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 (encrypting and decrypting are the same). Written out because the original's
    pycrypto took any key of 1 to 256 bytes, and ``cryptography``'s RC4 only a few sizes
    (a 29-byte DB_ENCRYPT_KEY like the original's sample config would be refused)."""
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def rc4_decrypt(stored: str, key: str) -> str:
    try:
        blob = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        raise WrongKey("not the original's RC4 format (not Base64)") from None
    raw = _key_bytes(key)
    if len(raw) > 256:
        raise WrongKey("an RC4 key is at most 256 bytes")
    try:
        text = rc4(raw, blob).decode("utf-8")
    except UnicodeDecodeError:
        raise WrongKey("does not decrypt under this DB_ENCRYPT_KEY") from None
    if not _printable(text):
        raise WrongKey("does not decrypt under this DB_ENCRYPT_KEY")
    return text


def decrypt_connection_password(stored: str, key: str, version: int) -> str:
    """A connection row's clear password, as the original's ``db_config_generator`` read it."""
    if version < FIRST_AES_VERSION:
        return rc4_decrypt(stored, key)
    return aes_decrypt(stored, key)
