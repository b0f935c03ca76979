#!/usr/bin/python3
"""MAP_SYNC / Device DAX checks for the rxe rig (tests/rxe/run.sh), run inside the guest.

  mapsync.py CHECK [CHECK...], each CHECK one of:

  file DIR accept              MAP_SHARED_VALIDATE|MAP_SYNC on a new file in DIR must succeed,
                               and what is written through the mapping must read back via read(2)
  file DIR refuse              ...must fail with EOPNOTSUPP (a file system without DAX)
  devdax DEV                   a MAP_SHARED mapping of the Device DAX character device DEV
                               (one alignment unit) must succeed and round-trip data

Exits 0 when every expectation holds, 1 otherwise; says what happened, one line per check.
"""

import errno
import mmap
import os
import sys

MAP_SHARED_VALIDATE = 0x03  # linux/mman.h
MAP_SYNC = 0x80000  # asm-generic/mman-common.h (x86 uses the generic value)
LENGTH = 2 * 1024 * 1024


def check_file(directory: str, expect: str) -> int:
    path = os.path.join(directory, ".rxe-rig-mapsync")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, LENGTH)
        try:
            m = mmap.mmap(
                fd,
                LENGTH,
                flags=MAP_SHARED_VALIDATE | MAP_SYNC,
                prot=mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except OSError as e:
            if expect == "refuse" and e.errno == errno.EOPNOTSUPP:
                print(f"MAP_SYNC on {directory}: refused with EOPNOTSUPP, as expected")
                return 0
            print(f"MAP_SYNC on {directory}: mmap failed: {e} (expected to {expect})")
            return 1
        pattern = b"rxe-rig MAP_SYNC check\n" * 64
        m[0 : len(pattern)] = pattern
        m[LENGTH - len(pattern) :] = pattern
        m.flush()
        m.close()
        head = os.pread(fd, len(pattern), 0)
        tail = os.pread(fd, len(pattern), LENGTH - len(pattern))
        if head != pattern or tail != pattern:
            print(f"MAP_SYNC on {directory}: mapping accepted but data did not read back")
            return 1
        if expect == "refuse":
            print(f"MAP_SYNC on {directory}: accepted, but this file system should refuse it")
            return 1
        print(f"MAP_SYNC on {directory}: mapping accepted, {LENGTH} bytes, data reads back")
        return 0
    finally:
        os.close(fd)
        os.unlink(path)


def check_devdax(dev: str) -> int:
    fd = os.open(dev, os.O_RDWR)
    try:
        try:
            m = mmap.mmap(fd, LENGTH, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            print(f"Device DAX {dev}: mmap of {LENGTH} bytes failed: {e}")
            return 1
        pattern = os.urandom(4096)
        m[0:4096] = pattern
        m.close()
        m = mmap.mmap(fd, LENGTH, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        back = m[0:4096]
        m.close()
        if back != pattern:
            print(f"Device DAX {dev}: data written through one mapping did not read back")
            return 1
        print(f"Device DAX {dev}: MAP_SHARED mapping works, data reads back")
        return 0
    finally:
        os.close(fd)


def main(argv: list) -> int:
    # one process for several checks: starting python is slow under TCG
    args = argv[1:]
    failed = 0
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    while args:
        if len(args) >= 3 and args[0] == "file" and args[2] in ("accept", "refuse"):
            failed |= check_file(args[1], args[2])
            args = args[3:]
        elif len(args) >= 2 and args[0] == "devdax":
            failed |= check_devdax(args[1])
            args = args[2:]
        else:
            print(f"unrecognised check: {' '.join(args)}\n{__doc__}", file=sys.stderr)
            return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
