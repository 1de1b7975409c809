"""The Python client of `make bench`: Stowage beside direct S3, measured with httpx.

A Django backend talks to Stowage through a client like this one, so a regression that only
such a client feels (small response frames costing it CPU, a slow first byte) shows here while
the Rust client stays unmoved. `stowage-bench` runs it with a JSON job on stdin (the Stowage URL
and token, presigned S3 URLs, sizes and repetition counts) and reads JSON results on stdout. On
failure it writes one line on stderr, without URLs or token, and exits with status 1.

Standard library and httpx only, with one synchronous `httpx.Client`; concurrent requests come
from threads, as in a threaded WSGI server. Every figure is a median; the two ways take turns
at going first.
"""

import io
import json
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

MIB = 1024 * 1024
# The size of the pieces uploads are read in, as httpx reads a file of a multipart form.
UPLOAD_CHUNK = 64 * 1024


class BenchError(Exception):
    """A request that failed; the message names the request, never its URL."""


class Repeated(io.RawIOBase):
    """`size` bytes of `block` over and over, as a file that can seek: httpx then knows its
    length and announces the form's, as `curl -F file=@...` and browsers do."""

    def __init__(self, block, size):
        super().__init__()
        self.block, self.size, self.pos = block, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, min(self.size, base + offset))
        return self.pos

    def read(self, n=-1):
        at = self.pos % len(self.block)
        n = self.size - self.pos if n is None or n < 0 else n
        n = min(n, self.size - self.pos, len(self.block) - at)
        self.pos += n
        return self.block[at : at + n]


def chunks(block, size):
    """`size` bytes of `block` in pieces of `UPLOAD_CHUNK`."""
    source = Repeated(block, size)
    return iter(lambda: source.read(UPLOAD_CHUNK), b"")


def median(values):
    """The middle value (the upper one of an even count), 0 for none, as the Rust side has it."""
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def percentile_ms(sorted_seconds, p):
    """The value at fraction `p` (nearest rank) in milliseconds, as the Rust side has it."""
    if not sorted_seconds:
        return 0.0
    index = math.floor((len(sorted_seconds) - 1) * p + 0.5)
    return sorted_seconds[index] * 1000.0


def ratio(a, b):
    """`a / b` to two decimals; 0 when `b` is not positive."""
    return round(a / b, 2) if b > 0 else 0.0


def turns(rep):
    """Whether Stowage goes first in repetition `rep`: the two ways take turns."""
    return (True, False) if rep % 2 == 0 else (False, True)


def expect(response, statuses, what):
    if response.status_code not in statuses:
        raise BenchError(f"{what} answered {response.status_code}")


class Client:
    """One httpx client, Stowage at `base` with `token`, and the direct URLs of the job."""

    def __init__(self, job):
        self.base = job["stowage"]["base"]
        self.auth = {"authorization": f"Bearer {job['stowage']['token']}"}
        self.connections = job["connections"]
        self.http = httpx.Client(
            timeout=httpx.Timeout(300.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            trust_env=False,
        )
        self.block = os.urandom(MIB)

    def upload(self, name, size):
        """`POST /files` of `size` bytes as the form's part `file`; the new file's id."""
        form = {"file": (name, Repeated(self.block, size), "application/octet-stream")}
        response = self.http.post(f"{self.base}/files", headers=self.auth, files=form)
        expect(response, (201,), "POST /files")
        return response.json()["file_id"]

    def put_direct(self, presigned, size):
        """`PUT` of `size` bytes on a presigned URL, with the length announced."""
        headers = dict(presigned["headers"], **{"content-length": str(size)})
        response = self.http.put(
            presigned["url"], headers=headers, content=chunks(self.block, size)
        )
        expect(response, (200,), "presigned PUT")

    def delete(self, file_id):
        response = self.http.delete(f"{self.base}/files/{file_id}", headers=self.auth)
        expect(response, (200, 204), "DELETE /files/{id}")

    def delete_direct(self, presigned):
        response = self.http.delete(presigned["url"], headers=presigned["headers"])
        expect(response, (200, 204), "presigned DELETE")

    def get(self, url, headers, what, byte_range=None):
        """Streams a response body as the client reads it: (bytes, reads, ttfb s, total s).

        `iter_raw()` without a size of its own hands over each piece httpcore got, and
        httpcore reads the socket in pieces of a fixed size (64 KiB), so the count of reads
        grows when the server writes smaller frames than that."""
        headers = dict(headers)
        if byte_range is not None:
            headers["range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        received, reads, first = 0, 0, None
        started = time.perf_counter()
        with self.http.stream("GET", url, headers=headers) as response:
            expect(response, (200, 206), what)
            for piece in response.iter_raw():
                if first is None:
                    first = time.perf_counter() - started
                received += len(piece)
                reads += 1
        return received, reads, first or 0.0, time.perf_counter() - started

    def stowage_get(self, file_id, byte_range=None):
        return self.get(
            f"{self.base}/files/{file_id}", self.auth, "GET /files/{id}", byte_range
        )

    def direct_get(self, presigned, byte_range=None):
        return self.get(presigned["url"], presigned["headers"], "presigned GET", byte_range)


def large(client, job):
    """One large file each way, up and then down; the ids of the files kept to read."""
    size = job["large_mib"] * MIB
    keys = job["direct"]["large"]
    up = {True: [], False: []}
    kept = None
    for rep in range(job["up_reps"]):
        for stowage in turns(rep):
            started = time.perf_counter()
            if stowage:
                file_id = client.upload("large.bin", size)
            else:
                client.put_direct(keys[rep]["put"], size)
            up[stowage].append(job["large_mib"] / (time.perf_counter() - started))
            # Only the first file of each way is kept for reading: the others go at once,
            # before the kernel writes them back to disk while later transfers run.
            if stowage and kept is None:
                kept = file_id
            elif stowage:
                client.delete(file_id)
            elif rep > 0:
                client.delete_direct(keys[rep]["delete"])
    down = {True: [], False: []}
    reads = {True: [], False: []}
    cpu = {True: 0.0, False: 0.0}
    for rep in range(job["down_reps"]):
        for stowage in turns(rep):
            cpu_before = time.process_time()
            if stowage:
                got, count, _, total = client.stowage_get(kept)
            else:
                got, count, _, total = client.direct_get(job["direct"]["large_get"])
            cpu[stowage] += time.process_time() - cpu_before
            if got != size:
                raise BenchError(f"a large download got {got} of {size} bytes")
            down[stowage].append(job["large_mib"] / total)
            reads[stowage].append(count)
    us, ud = median(up[True]), median(up[False])
    ds, dd = median(down[True]), median(down[False])
    mib_read = job["large_mib"] * job["down_reps"]
    result = {
        "upload": {"stowage_mib_s": us, "direct_mib_s": ud, "ratio": ratio(us, ud)},
        "download": {
            "stowage_mib_s": ds,
            "direct_mib_s": dd,
            "ratio": ratio(ds, dd),
            "stowage_reads": median(reads[True]),
            "direct_reads": median(reads[False]),
            "stowage_client_cpu_s_per_mib": cpu[True] / mib_read,
            "direct_client_cpu_s_per_mib": cpu[False] / mib_read,
        },
    }
    return result, kept


def concurrent(client, job, pool):
    """16 files of 1 MiB at once, each way."""
    rates = {True: [], False: []}
    for rep, keys in enumerate(job["direct"]["concurrent"]):
        for stowage in turns(rep):
            started = time.perf_counter()
            if stowage:
                ids = list(pool.map(lambda _: client.upload("c.bin", MIB), keys))
            else:
                list(pool.map(lambda k: client.put_direct(k["put"], MIB), keys))
            rates[stowage].append(len(keys) / (time.perf_counter() - started))
            if stowage:
                list(pool.map(client.delete, ids))
            else:
                list(pool.map(lambda k: client.delete_direct(k["delete"]), keys))
    s, d = median(rates[True]), median(rates[False])
    return {
        "files": len(job["direct"]["concurrent"][0]),
        "mib_each": 1,
        "upload": {"stowage_mib_s": s, "direct_mib_s": d, "ratio": ratio(s, d)},
    }


def ranged(client, job, large_id):
    """1 MiB from the middle of the large file: time to the first byte and to the last."""
    mid = job["large_mib"] * MIB // 2
    byte_range = (mid, mid + MIB - 1)
    ttfb = {True: [], False: []}
    total = {True: [], False: []}
    for rep in range(job["range_reps"]):
        for stowage in turns(rep):
            if stowage:
                got, _, first, all_of_it = client.stowage_get(large_id, byte_range)
            else:
                got, _, first, all_of_it = client.direct_get(
                    job["direct"]["large_get"], byte_range
                )
            if got != MIB:
                raise BenchError(f"a range read got {got} bytes")
            ttfb[stowage].append(first * 1000.0)
            total[stowage].append(all_of_it * 1000.0)
    return {
        way: {"ttfb_p50_ms": median(ttfb[s]), "total_p50_ms": median(total[s])}
        for way, s in (("stowage", True), ("direct", False))
    }


def load(client, pool, seconds, get):
    """`get` from `client.connections` threads for `seconds`: requests/s, p50 and p99 ms."""
    deadline = time.perf_counter() + seconds
    latencies, lock = [], threading.Lock()

    def worker(_):
        mine = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            get()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    list(pool.map(worker, range(client.connections)))
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": percentile_ms(latencies, 0.5),
        "p99_ms": percentile_ms(latencies, 0.99),
    }


def small(client, job, pool):
    """4 KiB GETs on a few connections for a while, each way."""
    direct = job["direct"]["small"]
    file_id = client.upload("small.bin", 4096)
    client.put_direct(direct["put"], 4096)

    def via_stowage():
        response = client.http.get(f"{client.base}/files/{file_id}", headers=client.auth)
        expect(response, (200,), "GET /files/{id}")

    def via_s3():
        response = client.http.get(direct["get"]["url"], headers=direct["get"]["headers"])
        expect(response, (200,), "presigned GET")

    s = load(client, pool, job["load_seconds"], via_stowage)
    d = load(client, pool, job["load_seconds"], via_s3)
    client.delete(file_id)
    client.delete_direct(direct["delete"])
    return {
        "connections": client.connections,
        "stowage": s,
        "direct": d,
        "ratio_requests_per_s": ratio(s["requests_per_s"], d["requests_per_s"]),
    }


def read_size():
    """httpcore's fixed socket read size, where this version has it where we look."""
    try:
        from httpcore._sync.http11 import HTTP11Connection

        return HTTP11Connection.READ_NUM_BYTES
    except (ImportError, AttributeError):
        return None


def run(job):
    client = Client(job)
    with client.http, ThreadPoolExecutor(max_workers=16) as pool:
        result, large_id = large(client, job)
        result["concurrent"] = concurrent(client, job, pool)
        result["range_1mib_from_the_middle"] = ranged(client, job, large_id)
        result["small_4kib_get"] = small(client, job, pool)
        client.delete(large_id)
        client.delete_direct(job["direct"]["large"][0]["delete"])
    result.update(
        {
            "large_mib": job["large_mib"],
            "httpx_version": httpx.__version__,
            "python_version": sys.version.split()[0],
            "read_size_bytes": read_size(),
        }
    )
    return result


def main():
    job = json.load(sys.stdin)
    try:
        result = run(job)
    except (BenchError, httpx.HTTPError, OSError, KeyError, ValueError) as e:
        # httpx's messages may hold a URL: its query (the signature) and the token go.
        message = re.sub(r"\?\S*", "?…", str(e)).replace(job["stowage"]["token"], "…")
        print(f"httpx client: {type(e).__name__}: {message}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
