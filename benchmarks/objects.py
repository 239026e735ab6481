"""Object store throughput with encryption, as a ratio to a plain file copy on the same disk.

For 4 KB and 8 MB objects: hdhub put (AES-256-GCM envelope encryption, SHA-256 trailer,
atomic write with fsync) and get (authenticated decryption + checksum) on the local
directory backend, against a plain copy of the same bytes on the same file system
(`shutil.copyfile` + fsync, the same durability as a put) and a plain read.

    python benchmarks/objects.py [--dir /path/on/the/disk/to/test]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from hdhub.config.keys import key_id
from hdhub.objects import open_store

CASES = [("4 KB", 4 * 1024, 2000), ("8 MB", 8 * 1024 * 1024, 40)]


def rate(seconds: float, n: int, size: int) -> tuple[float, float]:
    return n / seconds, n * size / seconds / 1e6


def bench(root: Path, label: str, size: int, n: int) -> None:
    src_dir, copy_dir = root / f"src-{size}", root / f"copy-{size}"
    src_dir.mkdir()
    copy_dir.mkdir()
    for i in range(n):
        (src_dir / f"{i}.bin").write_bytes(os.urandom(size))
    kek = os.urandom(32)
    store = open_store(f"file://{root}/store-{size}", {key_id(kek): kek})

    t0 = time.perf_counter()
    for i in range(n):
        dst = copy_dir / f"{i}.bin"
        shutil.copyfile(src_dir / f"{i}.bin", dst)
        with dst.open("rb+") as fh:
            os.fsync(fh.fileno())
    copy = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(n):
        with (src_dir / f"{i}.bin").open("rb") as fh:
            store.put(f"bench/{i}.bin", fh)
    put = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(n):
        (copy_dir / f"{i}.bin").read_bytes()
    read = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(n):
        store.get_bytes(f"bench/{i}.bin")
    get = time.perf_counter() - t0

    for what, ours, plain in (("put", put, copy), ("get", get, read)):
        ops, mbs = rate(ours, n, size)
        p_ops, p_mbs = rate(plain, n, size)
        ours_txt = f"{ops:>10,.0f}/s {mbs:>9,.1f} MB/s"
        plain_txt = f"{p_ops:>10,.0f}/s {p_mbs:>9,.1f} MB/s"
        print(f"{label:6} {what:4} {ours_txt}   plain {plain_txt}   ratio {ours / plain:5.2f}x time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(
            f"local directory backend on {Path(tmp).resolve().parent} (plain = copyfile+fsync / read_bytes)"
        )
        for label, size, n in CASES:
            bench(Path(tmp), label, size, n)


if __name__ == "__main__":
    main()
