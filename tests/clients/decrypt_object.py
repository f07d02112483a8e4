#!/usr/bin/env python3
"""A stored file decrypted without the server: encryption at rest checked from the outside.

tuspy uploads two files to a real Articula server: a binary STL (a compressible format, so its
segments are zstd-compressed before sealing) and a noisy WAV (audio, stored uncompressed). Then
this script reads what the server left in its data dir, with nothing but the format as
src/objects/crypto.rs describes it ("The format, byte for byte"), Python's `cryptography`
(AES-256-GCM) and `zstandard`, and gets each file's bytes back. No server code or endpoint takes
part in the decryption: the file's id (which is the tus upload's id) is all it is told.

Where the key material is, on a server with the local object store and SQLite (run.sh starts
it so):
- the master key: `<data dir>/keys/master.key`, base64 of 32 bytes, made by the server at its
  first start (unless ARTICULA_MASTER_KEY is set, which run.sh does not); its id is the hex of the
  first 8 bytes of its SHA-256;
- the organisation key: the row of `org_keys` (SQLite `<data dir>/articula.db`) whose id is the
  file's `key_id`: `wrapped` = base64(nonce 12 · AES-256-GCM(master, key) · tag 16), additional
  data `articula/org-key/<org_id>/<id>`, sealed by the master key named by `master_key_id`;
- the file's data key: `files.wrapped_dek`, sealed the same way by the organisation key, with
  the additional data `articula/data-key/<file id>`;
- the bytes: `<data dir>/objects/<files.object_key>`, a run of segments, each
  `len (u32 BE) · flags (1) · nonce (12) · ciphertext · tag (16)` (`len` counts what follows it),
  sealed with the additional data `file id (16 bytes) · index (u64 BE) · last (1) · flags (1)`;
  flag bit 0: the plaintext is a zstd frame.

Then it checks that the stored bytes hold no plaintext, that the decryption gives the uploaded
bytes (and `files.sha256`), and that one flipped bit anywhere in a segment makes it fail: AES-GCM
authenticates, the script does not merely decode.

Run by tests/clients/run.sh, which starts the server and passes TUSTEST_BASE_URL, TUSTEST_CA,
TUSTEST_TOKEN, TUSTEST_WORK_DIR and DECRYPTTEST_DATA_DIR (the server's ARTICULA_DATA_DIR).
"""

import base64
import hashlib
import os
import random
import sqlite3
import struct
import sys
import time
import uuid

import requests
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tusclient.client import TusClient

BASE = os.environ["TUSTEST_BASE_URL"].rstrip("/")
CA = os.environ["TUSTEST_CA"]
TOKEN = os.environ["TUSTEST_TOKEN"]
WORK = os.environ["TUSTEST_WORK_DIR"]
DATA_DIR = os.environ["DECRYPTTEST_DATA_DIR"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEGMENT_SIZE = 1024 * 1024
FLAG_ZSTD = 1

os.environ["REQUESTS_CA_BUNDLE"] = CA


def mesh_stl(triangles):
    """A regular binary STL (compressible, like a real scan)."""
    out = bytearray(b"Articula decrypt test mesh".ljust(80, b" ") + struct.pack("<I", triangles))
    for i in range(triangles):
        f = i * 0.01
        out += struct.pack("<12f", 0.0, 0.0, 1.0, f, f + 1.0, 2.0, f + 0.5, f, 3.0, f + 1.0, f, 4.0)
        out += b"\0\0"
    return bytes(out)


def noisy_wav(samples, seed):
    """A mono 16-bit WAV of noise: incompressible, so stored without zstd."""
    data = random.Random(seed).randbytes(2 * samples)
    head = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    head += struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16) + b"data" + struct.pack("<I", len(data))
    return head + data


def upload(case_id, name, data):
    """Uploads with tuspy; answers the file id (the upload's id, the last part of its URL)."""
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    client = TusClient(f"{BASE}/api/v1/uploads/", headers=AUTH)
    up = client.uploader(file_path=path, chunk_size=4 * 1024 * 1024, metadata={"case_id": case_id, "filename": name})
    up.upload()
    assert up.offset == len(data), (up.offset, len(data))
    return up.url.rstrip("/").rsplit("/", 1)[1]


# --- the independent reader: only the data dir and the format ---------------------------------


def open_sealed(key, sealed, aad):
    """nonce (12) · ciphertext · tag (16), AES-256-GCM."""
    if len(sealed) < 28:
        raise ValueError("sealed value too short")
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)


def master_keys():
    """The master key the server made at its first start, by id."""
    with open(os.path.join(DATA_DIR, "keys", "master.key"), "rb") as f:
        key = base64.b64decode(f.read().strip(), validate=True)
    assert len(key) == 32, len(key)
    return {hashlib.sha256(key).digest()[:8].hex(): key}


def file_row(db, file_id):
    row = db.execute(
        "SELECT object_key, key_id, wrapped_dek, size, sha256 FROM files WHERE id = ?", (file_id,)
    ).fetchone()
    assert row is not None, f"no file {file_id} in the database"
    return row


def data_key(db, masters, file_id, key_id, wrapped_dek):
    org_id, wrapped, master_id = db.execute(
        "SELECT org_id, wrapped, master_key_id FROM org_keys WHERE id = ?", (key_id,)
    ).fetchone()
    org_key = open_sealed(masters[master_id], base64.b64decode(wrapped), f"articula/org-key/{org_id}/{key_id}".encode())
    assert len(org_key) == 32
    dek = open_sealed(org_key, base64.b64decode(wrapped_dek), f"articula/data-key/{file_id}".encode())
    assert len(dek) == 32
    return dek


def split_segments(stored):
    """The stored segments, each with its length prefix, as (start, bytes)."""
    out, pos = [], 0
    while pos < len(stored):
        if pos + 4 > len(stored):
            raise ValueError(f"a length prefix cut off at {pos}")
        (n,) = struct.unpack(">I", stored[pos : pos + 4])
        if n < 1 + 28 or pos + 4 + n > len(stored):
            raise ValueError(f"segment at {pos} claims {n} bytes")
        out.append((pos, stored[pos : pos + 4 + n]))
        pos += 4 + n
    return out


def open_segment(dek, file_uuid, index, last, segment):
    flags = segment[4]
    aad = file_uuid.bytes + struct.pack(">Q", index) + bytes([1 if last else 0, flags])
    body = open_sealed(dek, segment[5:], aad)
    if flags & FLAG_ZSTD:
        body = zstandard.ZstdDecompressor().decompress(body, max_output_size=SEGMENT_SIZE)
    return flags, body


def decrypt(db, masters, file_id):
    """The file's plaintext, the flags of its segments, its stored bytes and its data key."""
    object_key, key_id, wrapped_dek, size, sha256 = file_row(db, file_id)
    root = os.path.realpath(os.path.join(DATA_DIR, "objects"))
    path = os.path.realpath(os.path.join(root, object_key))
    assert path.startswith(root + os.sep), f"object key {object_key!r} leaves the object store"
    with open(path, "rb") as f:
        stored = f.read()
    dek = data_key(db, masters, file_id, key_id, wrapped_dek)
    segments = split_segments(stored)
    file_uuid = uuid.UUID(file_id)
    plain, flags = bytearray(), []
    for i, (_, seg) in enumerate(segments):
        fl, body = open_segment(dek, file_uuid, i, i == len(segments) - 1, seg)
        if i < len(segments) - 1:
            assert len(body) == SEGMENT_SIZE, (i, len(body))
        flags.append(fl)
        plain += body
    assert len(plain) == size, (len(plain), size)
    assert hashlib.sha256(plain).hexdigest() == sha256, "files.sha256 differs from the decrypted bytes"
    return bytes(plain), flags, stored, dek, segments


def main():
    t0 = time.monotonic()
    r = requests.post(f"{BASE}/api/v1/cases", headers=AUTH, json={"label": "decrypt at rest test"}, timeout=60)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    case_id = r.json()["id"]

    originals = {
        "crown-decrypt.stl": mesh_stl(50_000),  # 2.5 MB: three segments, compressed
        "dictation-decrypt.wav": noisy_wav(700_000, seed=7),  # 1.4 MB: two segments, not compressed
    }
    ids = {name: upload(case_id, name, data) for name, data in originals.items()}
    print(f"uploaded {', '.join(f'{n} ({len(d)} bytes)' for n, d in originals.items())} with tuspy")

    # The files are complete once the case lists them (the last PATCH answered only then).
    r = requests.get(f"{BASE}/api/v1/cases/{case_id}/files", headers=AUTH, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text)
    assert sorted(f["id"] for f in r.json()) == sorted(ids.values()), r.json()

    masters = master_keys()
    db = sqlite3.connect(f"file:{os.path.join(DATA_DIR, 'articula.db')}?mode=ro", uri=True, timeout=30)
    seen_flags = set()
    try:
        for name, original in originals.items():
            file_id = ids[name]
            plain, flags, stored, dek, segments = decrypt(db, masters, file_id)
            assert plain == original, f"{name}: the decrypted bytes differ from the uploaded ones"
            for probe in (original[84:132], original[-48:], original[len(original) // 2 : len(original) // 2 + 48]):
                assert probe not in stored, f"{name}: the stored object contains plaintext"
            seen_flags.update(flags)
            print(f"{name}: {len(stored)} bytes stored in {len(segments)} segments (flags {flags}), decrypted to the uploaded bytes")

            # A flipped bit anywhere in a segment (prefix, flags, nonce, ciphertext, tag) fails.
            start, seg = segments[-1]
            file_uuid = uuid.UUID(file_id)
            for at in (4, 5, 5 + 12, len(seg) // 2, len(seg) - 1):
                bad = bytearray(seg)
                bad[at] ^= 0x01
                try:
                    open_segment(dek, file_uuid, len(segments) - 1, True, bytes(bad))
                except (InvalidTag, zstandard.ZstdError):
                    continue
                sys.exit(f"FAIL: {name}: a segment with byte {at} changed still opened")
            # Out of place (another index, or not marked last) it fails too.
            for index, last in ((len(segments), True), (len(segments) - 1, False)):
                try:
                    open_segment(dek, file_uuid, index, last, seg)
                except InvalidTag:
                    continue
                sys.exit(f"FAIL: {name}: a segment opened at index {index}, last={last}")
    finally:
        db.close()
    assert seen_flags == {0, FLAG_ZSTD}, f"expected compressed and uncompressed segments, saw flags {seen_flags}"
    print(f"decrypt: ok, {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
