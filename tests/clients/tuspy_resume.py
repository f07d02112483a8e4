#!/usr/bin/env python3
"""tuspy against a real Articula server: a 200 MB binary STL, a connection cut mid-PATCH, a resume.

The client talks to the server through a TCP relay on loopback that forwards the TLS bytes
untouched and, once, resets both sides of the connection in the middle of a PATCH body (a network
that drops). tuspy fails as it would in the field; a new client and uploader, with tuspy's own URL
storage reopened from disk, find the upload by fingerprint, ask the server its offset (HEAD) and
finish. Chunks carry `Upload-Checksum: sha256`, so the cut chunk must be discarded by the server.
Then the file must be listed with the right size and SHA-256 and download (signed link) to the
same SHA-256.

Run by tests/clients/run.sh, which starts the server and passes TUSTEST_BASE_URL, TUSTEST_CA (the
server's self-signed certificate, the only one trusted), TUSTEST_TOKEN, TUSTEST_CASE_ID and
TUSTEST_WORK_DIR.
"""

import hashlib
import os
import random
import select
import socket
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

BASE = os.environ["TUSTEST_BASE_URL"].rstrip("/")
CA = os.environ["TUSTEST_CA"]
TOKEN = os.environ["TUSTEST_TOKEN"]
CASE_ID = os.environ["TUSTEST_CASE_ID"]
WORK = os.environ["TUSTEST_WORK_DIR"]
TRIANGLES = int(os.environ.get("TUSTEST_TRIANGLES", "4000000"))  # 84 + 50·n bytes ≈ 200 MB
CHUNK = 8 * 1024 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TUS = {"Tus-Resumable": "1.0.0", **AUTH}

# tuspy trusts what requests trusts (it passes verify=True): exactly the server's certificate.
os.environ["REQUESTS_CA_BUNDLE"] = CA


class Sha256Uploader(Uploader):
    """tuspy's uploader with sha256 chunk checksums (tuspy defaults to sha1; the server speaks
    sha256). tuspy exposes the algorithm as this class attribute for that purpose."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


class TusClient256(TusClient):
    def uploader(self, *args, **kwargs):
        kwargs["client"] = self
        return Sha256Uploader(*args, **kwargs)


def write_stl(path, triangles, seed):
    """A binary STL of `triangles` triangles (84 + 50·n bytes), written in blocks. Coordinates are
    pseudo-random finite floats (|x| < 16), so no two blocks are alike and a byte put at a wrong
    offset changes the SHA-256. Returns (size, sha256 hex)."""
    rng = random.Random(seed)
    high = bytes((b & 0x80) | 0x40 | (b & 0x01) for b in range(256))  # sign, exponent 128..131
    sha = hashlib.sha256()
    head = b"Articula tuspy resume test (binary STL)".ljust(80, b" ") + struct.pack("<I", triangles)
    with open(path, "wb") as f:
        f.write(head)
        sha.update(head)
        left = triangles
        while left:
            n = min(left, 100_000)
            block = bytearray(rng.randbytes(50 * n))
            for k in range(12):  # normal and three vertices: 12 little-endian float32
                block[4 * k + 3 :: 50] = block[4 * k + 3 :: 50].translate(high)
            block[48::50] = bytes(n)  # attribute byte count: 0
            block[49::50] = bytes(n)
            f.write(block)
            sha.update(block)
            left -= n
    return 84 + 50 * triangles, sha.hexdigest()


class CuttingRelay:
    """A TCP relay on loopback in front of the server. Once `cut_after` bytes have gone from
    clients to the server (in total), the connection carrying them is reset on both sides
    (SO_LINGER 0, so RST rather than FIN), in the middle of whatever it was sending. Every other
    connection, before and after, is relayed untouched."""

    def __init__(self, target, cut_after):
        self.target = target
        self.cut_after = cut_after
        self.upstream = 0
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _count(self, n):
        with self._lock:
            self.upstream += n
            if not self.fired.is_set() and self.upstream >= self.cut_after:
                self.fired.set()
                return True
            return False

    @staticmethod
    def _reset(sock):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _relay(self, client):
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [])
                for src in readable:
                    data = src.recv(256 * 1024)
                    if not data:
                        return
                    if src is client and self._count(len(data)):
                        self._reset(client)
                        self._reset(server)
                        return
                    (server if src is client else client).sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            server.close()

    def close(self):
        self._listener.close()


def head_offset(url):
    """The server's offset for an upload. A HEAD may find the upload still locked (423) for the
    moment the server needs to notice the dropped request: it is asked again, for at most 30 s."""
    deadline = time.monotonic() + 30
    while True:
        r = requests.head(url, headers=TUS, verify=CA, timeout=30)
        if r.status_code != 423 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200, f"HEAD {url}: {r.status_code} {dict(r.headers)}"
    assert r.headers.get("Tus-Resumable") == "1.0.0", dict(r.headers)
    return int(r.headers["Upload-Offset"]), int(r.headers["Upload-Length"])


def main():
    t0 = time.monotonic()
    path = os.path.join(WORK, "scan-tuspy.stl")
    size, sha = write_stl(path, TRIANGLES, seed=20240401)
    print(f"file: {size} bytes ({TRIANGLES} triangles), sha256 {sha}, written in {time.monotonic() - t0:.1f} s")

    server = urlsplit(BASE)
    # Cut in the middle of a chunk, once about a third of the file has been sent.
    chunks_before_cut = -(-(size * 3 // 10) // CHUNK)
    relay = CuttingRelay((server.hostname, server.port), chunks_before_cut * CHUNK + CHUNK // 2)
    endpoint = f"https://127.0.0.1:{relay.port}/api/v1/uploads/"
    metadata = {"case_id": CASE_ID, "filename": "scan-tuspy.stl", "content_type": "model/stl", "kind": "scan"}
    url_store = os.path.join(WORK, "tuspy-urls.json")

    # 1. Upload until the connection drops.
    t_up = time.monotonic()
    client = TusClient256(endpoint, headers=AUTH)
    first = client.uploader(
        file_path=path,
        chunk_size=CHUNK,
        metadata=metadata,
        store_url=True,
        url_storage=FileStorage(url_store),
        upload_checksum=True,
    )
    try:
        first.upload()
        sys.exit("FAIL: the upload finished although its connection was cut")
    except (TusUploadFailed, TusCommunicationError) as e:
        interrupted = e
    assert relay.fired.is_set(), "the upload failed before the connection was cut"
    acked = first.offset
    sent = relay.upstream
    upload_url = first.url
    print(f"interrupted: {interrupted!r}")
    print(f"bytes at interruption: {sent} sent through the relay, {acked} acknowledged by the server")
    del first, client

    # 2. The server kept what it acknowledged and dropped the cut chunk (its checksum can not match).
    offset, length = head_offset(upload_url)
    print(f"server offset after the interruption: {offset} of {length}")
    assert length == size, (length, size)
    assert 0 < offset < size, f"offset {offset} is not strictly between 0 and {size}"
    assert offset == acked, f"server offset {offset} != acknowledged {acked}: the cut chunk was not discarded"

    # 3. A new client and uploader, with the URL storage reopened from disk, resume.
    client = TusClient256(endpoint, headers=AUTH)
    second = client.uploader(
        file_path=path,
        chunk_size=CHUNK,
        metadata=metadata,
        store_url=True,
        url_storage=FileStorage(url_store),
        upload_checksum=True,
    )
    assert second.url == upload_url, (second.url, upload_url)
    resumed_at = second.offset
    print(f"offset reported on resume: {resumed_at}")
    assert resumed_at == offset, (resumed_at, offset)
    second.upload()
    assert second.offset == size, (second.offset, size)
    headers = second.request.response_headers
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[1]
    assert headers.get("articula-file-id") == upload_id, headers
    print(f"upload: {time.monotonic() - t_up:.1f} s (resumed {size - resumed_at} bytes)")
    relay.close()

    # 4. The case lists the file with the right size and SHA-256.
    r = requests.get(f"{BASE}/api/v1/cases/{CASE_ID}/files", headers=AUTH, verify=CA, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text)
    listed = [f for f in r.json() if f["id"] == upload_id]
    assert len(listed) == 1, r.json()
    f = listed[0]
    assert (f["name"], f["size"], f["sha256"]) == ("scan-tuspy.stl", size, sha), f
    assert (f["kind"], f["content_type"]) == ("scan", "model/stl"), f

    # 5. A signed link downloads the same bytes.
    t_dl = time.monotonic()
    r = requests.post(f"{BASE}/api/v1/files/{upload_id}/link", headers=AUTH, verify=CA, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text)
    link = r.json()["url"]
    got = hashlib.sha256()
    n = 0
    with requests.get(link, headers=AUTH, verify=CA, stream=True, timeout=300) as r:
        assert r.status_code == 200, (r.status_code, r.text[:500])
        assert r.headers["Content-Type"] == "model/stl", dict(r.headers)
        # requests sends Accept-Encoding: gzip, deflate; the server may compress on the fly
        # (then there is no Content-Length, and iter_content decodes).
        encoding = r.headers.get("Content-Encoding", "identity")
        if encoding == "identity":
            assert r.headers["Content-Length"] == str(size), dict(r.headers)
        for part in r.iter_content(1024 * 1024):
            got.update(part)
            n += len(part)
    assert n == size, (n, size)
    assert got.hexdigest() == sha, (got.hexdigest(), sha)
    print(f"download: {n} bytes (content-encoding {encoding}), sha256 matches, {time.monotonic() - t_dl:.1f} s")
    print(f"tuspy: ok, total {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
