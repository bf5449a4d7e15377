#!/usr/bin/env python3
"""Differential fuzzing against the real tools: writes N random cases in the corpus layout.

Usage: python3 tests/conformance/gen-random.py OUTDIR N [SEED]
Then:  KNOCKWRAP_ORACLE_CASES=OUTDIR bash tests/conformance/oracle.sh
       KNOCKWRAP_CONFORMANCE_CASES=OUTDIR cargo test --test conformance -- --nocapture

Files are built from the grammar's own pieces (daemon and client patterns of every kind,
separators, EXCEPT, options, comments, continuations, CRLF, a rare NUL, over-long or
unterminated line) so that most lines are near-valid and the interesting edges are hit often.
Same seed, same cases. A disagreement found this way becomes a numbered case in cases/.
Random cases have no deliberate.json entries, so expect knockwrap's deliberate errors
(net-host-bits, bad-net-mask, except-without-pattern, nul-byte, control-byte) to be listed;
every other line of the report is a finding.
"""

import os
import random
import shutil
import sys

DAEMONS = ["sshd", "SSHD", "ALL", "vsftpd", "ss*", "sshd@192.0.2.10", "ALL@198.51.100.10",
           "in.telnetd", "sshd?", "Sshd", "@sshd", "sshd@", "sshd@[2001:db8::10]",
           "sshd@192.0.2.0/24", "sshd@192.0.2.", "sshd@[2001:db8::]/64", "sshd@ALL", "sshd@KNOWN",
           "sshd@UNKNOWN", "ALL EXCEPT vsftpd", "sshd@192.0.2.1?", "sshd@LOCAL"]
HOSTS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.", "192.0.2.0/24", "192.0.2.0/255.255.255.0",
         "192.0.2.1/24", "192.0.2.0/25", "192.0.2.128/25", "192.0.2.*", "192.0.2.?", "198.51.100.",
         "198.51.100.0/255.255.255.128", "10.", "10.0.0.0/8", "0.0.0.0/0", "0.0.0.0/0.0.0.0",
         "[2001:db8::1]", "[2001:db8::]/32", "[2001:db8::1]/64", "[2001:db8::/32]", "2001:db8::1",
         "[::]/0", "[2001:db8::]/", "[::ffff:192.0.2.1]", "ALL", "KNOWN", "UNKNOWN", "LOCAL",
         "PARANOID", "all", "*", ".example.com", "localhost", "@group", "/nonexistent/x",
         "192.0.2.1.", "192.0.2.1;", "[192.0.2.1]", "010.0.0.0/8", "192.0.2.0/33", "192.0.2.0/0",
         "192.0.2.255/255.255.255.255", "192.0.2.0/255.0.255.0", "::ffff:192.0.2.1",
         "[2001:DB8::1]", "[2001:db8:0:0::1]", "[2001:db8::]/48", "[::ffff:192.0.2.0]/120",
         "[::ffff:192.0.2.1]/128", "[2001:db8::]/64abc", "192.0.2.0/0255.255.255.0", "0x0a.0.0.0/8",
         "KNOWN@ALL", "UNKNOWN@UNKNOWN", "192.0.2.1 EXCEPT 192.0.2.1"]
USERS = ["root@", "KNOWN@", "UNKNOWN@", "r*@", "ALL@"]
OPTIONS = [": allow", ": deny", ": twist /bin/echo x\\: y", ": severity local0.notice : allow",
           ": rfc931", ": rfc931 5 : deny", ": nice 5", ": setenv A b\\:c : allow", ": Allow", ": DENY", ": ALLOW", ": twist /bin/echo no", ": spawn /bin/true : allow",
           ": severity auth.info", ": severity bogus", ": bogus", ": allow : deny", ":: allow",
           ": spawn /bin/echo a\\:b", ": keepalive", ": linger 5 : deny", ": twist x : allow",
           ": setenv A b", ": umask 077", ": allow yes", ": spawn"]
SEPS = [", ", " ", ",", "\t", " , ", ",,"]
QUERY_DAEMONS = ["sshd", "vsftpd", "sshd@192.0.2.10", "in.telnetd", "SSHD", "sshd@2001:db8::10",
                 "sshd@198.51.100.10"]
QUERY_CLIENTS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.200", "198.51.100.7",
                 "198.51.100.200", "10.1.2.3", "2001:db8::1", "2001:db8::2", "2001:db9::1",
                 "::ffff:192.0.2.1", "root@192.0.2.1", "alice@192.0.2.2", "203.0.113.9",
                 "2001:DB8::1", "::ffff:192.0.2.200", "root@2001:db8::1", "10.0.0.1"]


def pattern_list(rng, items, except_rate=0.15):
    out = [rng.choice(items) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
    if rng.random() < except_rate:
        out += ["EXCEPT" if rng.random() < 0.9 else "except"]
        out += [rng.choice(items) for _ in range(rng.choice((1, 1, 2)))]
    text = ""
    for i, item in enumerate(out):
        text += (rng.choice(SEPS) if i else "") + item
    return text


def client(rng):
    host = rng.choice(HOSTS)
    return rng.choice(USERS) + host if rng.random() < 0.07 else host


def rule(rng):
    daemons = pattern_list(rng, DAEMONS, 0.08)
    clients_ = [client(rng) for _ in range(4)]
    clients = pattern_list(rng, clients_)
    line = daemons + rng.choice((": ", ":", " : ", ":\t")) + clients
    if rng.random() < 0.25:
        line += " " + rng.choice(OPTIONS)
    r = rng.random()
    if r < 0.03:
        line = line.replace(":", "", 1)  # missing colon
    elif r < 0.05:
        line = daemons + ":"  # empty client list
    elif r < 0.07:
        line = line + " # " + rng.choice(HOSTS)  # mid-line "comment"
    return line


def physical(rng, line):
    r = rng.random()
    if r < 0.06 and " " in line:  # continuation at a blank
        i = rng.choice([i for i, c in enumerate(line) if c == " "])
        line = line[:i] + " \\\n" + line[i + 1:]
    elif r < 0.08:
        line = line + " \\"  # continues into the next line, whatever it is
    ending = "\r\n" if rng.random() < 0.05 else "\n"
    return line + ending


def body(rng, n):
    out = ""
    for _ in range(n):
        r = rng.random()
        if r < 0.10:
            out += "# " + rule(rng) + ("\\\n" if rng.random() < 0.2 else "\n")
        elif r < 0.13:
            out += "  # " + rule(rng) + "\n"
        elif r < 0.16:
            out += rng.choice(("\n", "  \n", "\t\n"))
        else:
            out += physical(rng, rule(rng))
    data = out.encode()
    r = rng.random()
    if r < 0.04:
        data = data.rstrip(b"\n")  # unterminated last line
    elif r < 0.06:
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + b"\x00" + data[cut:]
    elif r < 0.08:
        cut = data.find(b"\n", rng.randrange(len(data) + 1))
        if cut >= 0:
            data = data[:cut] + b" " * 2100 + b" 192.0.2.3" + data[cut:]
    return data


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    out, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) == 4 else 7)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for i in range(n):
        d = os.path.join(out, "r%04d" % i)
        os.makedirs(d)
        with open(os.path.join(d, "hosts.allow"), "wb") as f:
            f.write(body(rng, rng.randrange(0, 8)))
        if rng.random() < 0.85:
            deny = body(rng, rng.randrange(0, 3)) if rng.random() < 0.5 else b"ALL: ALL\n"
            with open(os.path.join(d, "hosts.deny"), "wb") as f:
                f.write(deny)
        with open(os.path.join(d, "queries"), "w") as f:
            f.write("# random case %d\n" % i)
            for _ in range(5):
                f.write("%s %s\n" % (rng.choice(QUERY_DAEMONS), rng.choice(QUERY_CLIENTS)))
    print("%s: %d random cases" % (out, n))


if __name__ == "__main__":
    main()
