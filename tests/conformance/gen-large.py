#!/usr/bin/env python3
"""Writes a deterministic 100,000-line hosts.allow for benchmarks (tcpdchk, knockwrap check).

Usage: python3 tests/conformance/gen-large.py OUT [LINES]

The mix imitates a long-lived managed file: mostly `SSHD: a.b.c.d` lines appended by the
writer, plus IPv6 managed lines, networks in every form libwrap accepts, EXCEPT lists,
options, comments and blank lines. Every line is valid for libwrap (tcpdchk reports no
errors, only its DNS noise), so a checker has to do the whole job on every line. Same seed,
same bytes: the output's SHA-256 is printed so figures can name the exact file.
"""

import hashlib
import random
import sys

SEED = 20261125


def v4(rng):
    """A private, benchmark (198.18/15) or documentation address: text only, never contacted."""
    b, c, d = rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)
    return rng.choice(
        (
            "10.%d.%d.%d" % (b, c, d),
            "172.%d.%d.%d" % (16 + b % 16, c, d),
            "192.168.%d.%d" % (c, d),
            "198.%d.%d.%d" % (18 + b % 2, c, d),
            "192.0.2.%d" % d,
            "198.51.100.%d" % d,
            "203.0.113.%d" % d,
        )
    )


def line(rng, n):
    r = rng.random()
    if r < 0.70:
        return "SSHD: %s" % v4(rng)
    if r < 0.76:
        return "SSHD: [2001:db8:%x:%x::%x]" % (rng.randrange(65536), rng.randrange(65536), rng.randrange(1, 65536))
    if r < 0.80:
        return "sshd: 10.%d.0.0/16" % rng.randrange(256)
    if r < 0.83:
        return "sshd, vsftpd: %d.%d.%d.0/255.255.255.0" % (10, rng.randrange(256), rng.randrange(256))
    if r < 0.85:
        return "ALL: %d.%d." % (10, rng.randrange(256))
    if r < 0.87:
        return "sshd: [2001:db8:%x::]/48" % rng.randrange(65536)
    if r < 0.89:
        return "sshd: 10.%d.0.0/16 EXCEPT 10.%d.1.%d" % ((k := rng.randrange(256)), k, rng.randrange(1, 255))
    if r < 0.91:
        return "sshd: %s : severity auth.info : allow" % v4(rng)
    if r < 0.92:
        return "in.telnetd: %s : spawn /bin/echo %%a %%d \\: refused >> /dev/null : deny" % v4(rng)
    if r < 0.97:
        return "# lease %d for %s expires later" % (n, v4(rng))
    return ""


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    lines = int(sys.argv[2]) if len(sys.argv) == 3 else 100_000
    rng = random.Random(SEED)
    data = "".join(line(rng, n) + "\n" for n in range(lines)).encode()
    with open(sys.argv[1], "wb") as f:
        f.write(data)
    print("%s: %d lines, %d bytes, sha256 %s" % (sys.argv[1], lines, len(data), hashlib.sha256(data).hexdigest()))


if __name__ == "__main__":
    main()
