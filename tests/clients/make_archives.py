"""Writes the archives tests/api/archives.rs imports, with Python's own tarfile and zipfile
(an independent writer: the server's reader is not tested against itself).

    make_archives.py OUT_DIR

Prints a JSON object: archive name -> what the test should expect of it. Every archive's
members are fixed here; mtimes are whole even seconds (zip keeps 2-second DOS times).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
import zipfile

MTIME = 1_600_000_000  # 2020-09-13 12:26:40 UTC, even
os.environ["TZ"] = "UTC"  # zipfile writes DOS times in local time
time.tzset()


def content(n: int, seed: int) -> bytes:
    return bytes(((i * 2654435761 + seed * 7919) >> 13) & 0xFF for i in range(n))


FILES = {
    "top.txt": b"hello archive\n",
    "docs/readme.md": b"# read me\n" * 50,
    "docs/deep/er/data.bin": content(300_000, 1),
    "photos/2020/a.jpg": content(70_000, 2),
}


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mtime: int = MTIME, **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, **kw) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info)


def hostile_tar(path: str) -> dict:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        add_file(tar, "ok.txt", b"fine")
        add_file(tar, "../escape.txt", b"zip slip")
        add_file(tar, "sub/../../escape2.txt", b"zip slip")
        add_file(tar, "/abs.txt", b"absolute")
        add_special(tar, "link", tarfile.SYMTYPE, linkname="/etc")
        add_file(tar, "link/passwd", b"stays inside")
        add_special(tar, "hard", tarfile.LNKTYPE, linkname="ok.txt")
        add_special(tar, "dev", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add_special(tar, "fifo", tarfile.FIFOTYPE)
        add_file(tar, "caf\udce9.txt", b"latin-1 name")
        add_file(tar, ".fileorg-tmp-planted", b"reserved")
        add_file(tar, "back\\slash.txt", b"backslash")
        add_file(tar, "dup.txt", b"first")
        add_file(tar, "dup.txt", b"second")
        add_file(tar, "/".join(["d"] * 5000) + "/deep.txt", b"too deep")
        add_file(tar, "n" * 300 + ".txt", b"name too long")
    return {
        "stored": {"ok.txt": "fine", "link/passwd": "stays inside", "dup.txt": "first"},
        "stored_rename": {"ok.txt": "fine", "link/passwd": "stays inside",
                          "dup.txt": "first", "dup (1).txt": "second"},
        "skipped": {
            "../escape.txt": "UNSAFE_PATH",
            "sub/../../escape2.txt": "UNSAFE_PATH",
            "/abs.txt": "UNSAFE_PATH",
            "link": "SYMLINK",
            "hard": "HARD_LINK",
            "dev": "SPECIAL_FILE",
            "fifo": "SPECIAL_FILE",
            "caf\ufffd.txt": "NAME_NOT_UTF8",
            ".fileorg-tmp-planted": "INVALID_NAME",
            "back\\slash.txt": "INVALID_NAME",
            "/".join(["d"] * 5000) + "/deep.txt": "TOO_DEEP",
            "n" * 300 + ".txt": "INVALID_NAME",
        },
    }


def plain_zip(path: str, streamed: bool) -> None:
    """A zip of FILES; `streamed` writes it to an unseekable pipe, so every deflated
    entry has a data descriptor (general purpose bit 3) and zero sizes in its header."""
    buffer = io.BytesIO()

    class Unseekable(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            buffer.write(b)
            return len(b)

    target = Unseekable() if streamed else buffer
    with zipfile.ZipFile(target, "w") as z:
        z.writestr(zipfile.ZipInfo("docs/", date_time=time.gmtime(MTIME)[:6]), b"")
        for i, (name, data) in enumerate(FILES.items()):
            info = zipfile.ZipInfo(name, date_time=time.gmtime(MTIME + 2 * i)[:6])
            # Every other entry stored, unless streamed (stored + descriptor is refused).
            info.compress_type = zipfile.ZIP_DEFLATED if (streamed or i % 2) else zipfile.ZIP_STORED
            z.writestr(info, data)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def hostile_zip(path: str) -> dict:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ok.txt", b"fine")
        z.writestr("../evil.txt", b"zip slip")
        z.writestr("/abs.txt", b"absolute")
        link = zipfile.ZipInfo("link")
        link.create_system = 3
        link.external_attr = (0o120777 << 16)
        z.writestr(link, b"/etc/passwd")
        fifo = zipfile.ZipInfo("fifo")
        fifo.create_system = 3
        fifo.external_attr = (0o010644 << 16)
        z.writestr(fifo, b"")
        z.writestr("dup.txt", b"first")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr("dup.txt", b"second")
    return {
        "stored": {"ok.txt": "fine", "dup.txt": "first"},
        "skipped": {"../evil.txt": "UNSAFE_PATH", "/abs.txt": "UNSAFE_PATH",
                    "link": "SYMLINK", "fifo": "SPECIAL_FILE", "dup.txt": "ALREADY_EXISTS"},
    }


def bomb_zip(path: str, size: int) -> None:
    """One deflated entry of `size` zero bytes, written in 1 MiB pieces."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("zeros.bin", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            piece = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(piece)


def main() -> None:
    out = sys.argv[1]
    expect = {}
    expect["hostile.tar"] = hostile_tar(os.path.join(out, "hostile.tar"))
    plain_zip(os.path.join(out, "plain.zip"), streamed=False)
    plain_zip(os.path.join(out, "streamed.zip"), streamed=True)
    expect["hostile.zip"] = hostile_zip(os.path.join(out, "hostile.zip"))
    bomb_zip(os.path.join(out, "bomb.zip"), 256 << 20)
    expect["files"] = {name: data.hex() for name, data in FILES.items()}
    expect["mtime"] = MTIME
    json.dump(expect, sys.stdout)


if __name__ == "__main__":
    main()
