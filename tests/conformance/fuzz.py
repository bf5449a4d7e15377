#!/usr/bin/env python3
"""Differential fuzzer: knockwrap `match` and `check` against Debian's tcpdmatch and tcpdchk.

Run it through oracle.sh, which provides the sandbox (no network, a private /dev/log whose
syslog messages are collected):

    cargo build --bin knockwrap
    bash tests/conformance/oracle.sh --fuzz --seed 1 --cases 1000 \
        [--queries 5] [--out /tmp/kw-fuzz] [--knockwrap target/debug/knockwrap] \
        [--file tests/conformance/pending] [--report /tmp/kw-fuzz/report.json]

For each case the seeded generator writes a hosts.allow, usually a hosts.deny, and probes
(`DAEMON[@SERVER] [USER@]CLIENT`), all in the corpus layout; oracle.py records what tcpdchk
and tcpdmatch say (expected.json); then knockwrap runs on the same files and the runner
compares, with the rules of tests/conformance.rs:

- match: the same verdict, file and rule line. A refusal (exit 2) of a client tcpdmatch takes is
  a disagreement unless it is a documented refusal (a scoped address).
- check, misses: a line tcpdchk flags where knockwrap reports nothing.
- check, extras: a knockwrap *error* on a line tcpdchk does not flag. Those in the classes
  docs/hosts_access.md lists as deliberately stricter (deliberate.json) are counted apart.

Each disagreement is classified (miss: tcpdchk's message with the file's text replaced by X;
extra: knockwrap's code; match: expected/got verdicts), minimised (lines are dropped from both
files while the same class of disagreement stays) and written to OUT/findings/. With
--file DIR the first minimised case of every class is copied into DIR as a numbered case
(NNN-fuzz-...) with its expected.json, ready to move into cases/ once it passes. The same seed
gives the same cases. The summary (cases, probes, disagreements by class) goes to stdout and,
as JSON, to --report.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

import oracle

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# ---------------------------------------------------------------------------------------------
# Generator: the grammar's pieces, weighted towards the edges. No piece may depend on the
# machine: `/path` patterns name files that do not exist (libwrap would read an existing one as
# a pattern list; knockwrap never reads it), and there are no `user`, `group` or `banners`
# options (libwrap looks the names up on the machine, and tcpdchk really calls setuid/setgid, so
# its messages even depend on the rules it checked before).

DAEMONS = [
    "sshd", "sshd", "SSHD", "vsftpd", "in.telnetd", "ALL", "ALL", "all", "ss*", "sshd?",
    "Sshd", "in.*", "@sshd", "sshd.", ".sshd", "/nonexistent/sshd", "LOCAL", "KNOWN", "UNKNOWN",
    "PARANOID", "FAIL", "local", "*", "?shd",
]
SERVERS = [
    "192.0.2.10", "198.51.100.10", "[2001:db8::10]", "192.0.2.0/24", "192.0.2.", "198.18.0.0/24",
    "[2001:db8::]/64", "ALL", "KNOWN", "UNKNOWN", "LOCAL", "192.0.2.1?", "", "x.", "@grp",
    "192.0.2.0/255.255.255.0", "10.1.2.3/8", "*", "[2001:db8::10]/128", "192.0.2.*",
]
HOSTS = [
    "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.", "192.0.2.0/24", "192.0.2.0/255.255.255.0",
    "192.0.2.1/24", "192.0.2.0/25", "192.0.2.128/25", "192.0.2.*", "192.0.2.?", "198.51.100.",
    "198.51.100.0/255.255.255.128", "10.", "10.0.0.0/8", "0.0.0.0/0", "0.0.0.0/0.0.0.0",
    "[2001:db8::1]", "[2001:db8::]/32", "[2001:db8::1]/64", "[2001:db8::/32]", "2001:db8::1",
    "[::]/0", "[2001:db8::]/", "[::ffff:192.0.2.1]", "ALL", "KNOWN", "UNKNOWN", "LOCAL",
    "PARANOID", "all", "*", ".example.com", "localhost", "@group", "/nonexistent/x",
    "192.0.2.1.", "192.0.2.1;", "[192.0.2.1]", "010.0.0.0/8", "192.0.2.0/33", "192.0.2.0/0",
    "192.0.2.255/255.255.255.255", "192.0.2.0/255.0.255.0", "::ffff:192.0.2.1", "[2001:DB8::1]",
    "[2001:db8:0:0::1]", "[2001:db8::]/48", "[::ffff:192.0.2.0]/120", "[::ffff:192.0.2.1]/128",
    "[2001:db8::]/64abc", "0x0a.0.0.0/8", "10.0.0.1", "10.0.0.*", "*.0.0.1", "*10.0.0.1",
    "*a00:1", "[::a00:1]", "[::10.0.0.1]", "[::]/96", "[::ffff:0:0]/96", "010.0.0.1", "8.0.0.1",
    "8.0.0.0/8", "192.168.1.?[10.0.0.1]", "*192.168.1.", "10.*.", "*ffff*", "FAIL", "?", "*.*",
    "10.0.0.1/32", "10.0.0.0/255.0.0.255", "[fe80::1]", "[fe80::1%lo]", "@", "10.0.0.0\x0b/8",
    "10.0.0.0/255.0.0.0\x0c", "10.0.0.0/\x0b8", "10.0.0.1\x0b", "10.0.0.0/8\x0bx",
    "[2001:db8::]/32\x0b", "10.0.0.0\x0cjunk/255.0.0.0", "10.0.0.0/25\x0b5.0.0.0", "a]b",
    "[2001:db8::1]x", "10.0.0.0/255.255.255.0/8", "1.2.3.4.", "10.0.0.256", "::", "[::]",
    "[::1]", "127.0.0.1", "127.", "192.0.2.0/24x", "[2001:db8::]/129", "[2001:db8::]/-1",
]
USERS = [
    "root", "KNOWN", "UNKNOWN", "r*", "ALL", "@root", "root.", ".root", "/x", "local",
    "PARANOID", "fail", "alice", "ro?t", "known", "a.b",
]
OPTIONS = [
    "allow", "deny", "twist /bin/echo x\\: y", "severity local0.notice : allow", "rfc931",
    "rfc931 5 : deny", "nice 5", "setenv A b\\:c : allow", "Allow", "DENY", "twist /bin/echo no",
    "spawn /bin/true : allow", "severity auth.info", "severity bogus", "bogus", "allow : deny",
    ": allow", "spawn /bin/echo a\\:b", "keepalive", "linger 5 : deny", "twist x : allow",
    "setenv A b", "umask 077", "allow yes", "spawn", "spawn echo %o", "spawn echo %a %h %u %%",
    "twist echo %x", "setenv X %c%d", "aclexec echo %Z", "spawn echo %\\:x", "spawn echo 100%",
    "linger \x0b0", "nice \x0c-5", "umask \x0b022", "rfc931 \x0b3", "linger\x0b0",
    "severity \x0bauth.info", "keepalive\x0b", "allow\x0b", "umask 999", "linger abc", "nice", "rfc931 0", "severity auth",
    "spawn echo hi\x01", "twist /bin/echo %r %R %s %n %N %A %H", "deny : allow", "", ":",
]
SEPS = [", ", " ", ",", "\t", " , ", ",,", "  "]
CONTROL = ["\x01", "\x0b", "\x0c", "\x1b", "\x7f", "\x0b", "\x0c"]

QUERY_DAEMONS = [
    "sshd", "sshd", "vsftpd", "in.telnetd", "SSHD", "sshd@192.0.2.10", "sshd@198.51.100.10",
    "sshd@2001:db8::10", "sshd@198.18.0.7", "local", "ftp",
]
QUERY_CLIENTS = [
    "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.200", "198.51.100.7", "198.51.100.200",
    "10.1.2.3", "2001:db8::1", "2001:db8::2", "2001:db9::1", "::ffff:192.0.2.1", "203.0.113.9",
    "2001:DB8::1", "::ffff:192.0.2.200", "10.0.0.1", "8.0.0.1", "::10.0.0.1", "127.0.0.1",
    "::1", "fe80::1", "2001:db8::10",
]
# Spellings tcpdmatch takes that are not how the run time writes the address.
ODD_CLIENTS = [
    "::a00:1", "::ffff:a00:1", "0:0:0:0:0:ffff:10.0.0.1", "::FFFF:10.0.0.1", "010.0.0.1",
    "10.0.0.01", "0x0a.0.0.1", "10.1", "167772161", "2001:db8:0:0:0:0:0:1", "2001:0db8::1",
    "fe80::1%lo", "0:0:0:0:0:0:a00:1", "::0a00:1", "fe80::1%1",
]
QUERY_USERS = ["root", "alice", "r00t", "unknown"]


def pattern_list(rng, pick, except_rate=0.15):
    items = [pick() for _ in range(rng.choice((1, 1, 1, 2, 3)))]
    if rng.random() < except_rate:
        items.append("EXCEPT" if rng.random() < 0.9 else "except")
        items += [pick() for _ in range(rng.choice((1, 1, 2)))]
        if rng.random() < 0.05:
            items.append("EXCEPT")
    text = ""
    for i, item in enumerate(items):
        text += (rng.choice(SEPS) if i else "") + item
    return text


def daemon(rng):
    d = rng.choice(DAEMONS)
    if rng.random() < 0.12:
        d += "@" + rng.choice(SERVERS)
    return d


def client(rng):
    host = rng.choice(HOSTS)
    if rng.random() < 0.10:
        return rng.choice(USERS) + "@" + host
    if rng.random() < 0.01:
        return rng.choice(USERS) + "@"
    return host


def rule(rng):
    daemons = pattern_list(rng, lambda: daemon(rng), 0.08)
    pool = [client(rng) for _ in range(4)]
    clients = pattern_list(rng, lambda: rng.choice(pool))
    line = daemons + rng.choice((": ", ":", " : ", ":\t")) + clients
    r = rng.random()
    if r < 0.02:
        line = line + " # " + rng.choice(HOSTS)  # mid-line "comment"
    if rng.random() < 0.3:
        line += rng.choice((" : ", ": ", ":")) + rng.choice(OPTIONS)
    if r < 0.02:
        pass
    elif r < 0.05:
        line = line.replace(":", "", 1)  # missing colon
    elif r < 0.07:
        line = daemons + ":"  # empty client list
    elif r < 0.09:
        at = rng.randrange(len(line) + 1)
        line = line[:at] + rng.choice(CONTROL) + line[at:]
    return line


def physical(rng, line, crlf):
    r = rng.random()
    if r < 0.06 and " " in line:  # continuation at a blank
        i = rng.choice([i for i, c in enumerate(line) if c == " "])
        line = line[:i] + " \\\n" + line[i + 1:]
    elif r < 0.08:
        line = line + " \\"  # continues into the next line, whatever it is
    return line + ("\r\n" if crlf or rng.random() < 0.03 else "\n")


def body(rng, n):
    crlf = rng.random() < 0.05
    out = ""
    for _ in range(n):
        r = rng.random()
        if r < 0.10:
            out += "# " + rule(rng) + ("\\\n" if rng.random() < 0.2 else "\n")
        elif r < 0.13:
            out += "  # " + rule(rng) + "\n"
        elif r < 0.16:
            out += rng.choice(("\n", "  \n", "\t\n", "\r\n"))
        else:
            out += physical(rng, rule(rng), crlf)
    data = out.encode("latin-1")
    r = rng.random()
    if r < 0.04:
        data = data.rstrip(b"\n")  # unterminated last line
    elif r < 0.055 and data:
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + b"\x00" + data[cut:]
    elif r < 0.075:
        cut = data.find(b"\n", rng.randrange(len(data) + 1))
        if cut >= 0:
            data = data[:cut] + b" " * rng.choice((2030, 2041, 2100)) + b" 192.0.2.3" + data[cut:]
    return data


def probe(rng):
    d = rng.choice(QUERY_DAEMONS)
    c = rng.choice(ODD_CLIENTS) if rng.random() < 0.05 else rng.choice(QUERY_CLIENTS)
    if rng.random() < 0.08:
        c = rng.choice(QUERY_USERS) + "@" + c
    return d, c


def generate(rng, case_dir, n_queries):
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "hosts.allow"), "wb") as f:
        f.write(body(rng, rng.randrange(0, 8)))
    if rng.random() < 0.85:
        deny = body(rng, rng.randrange(0, 3)) if rng.random() < 0.5 else b"ALL: ALL\n"
        with open(os.path.join(case_dir, "hosts.deny"), "wb") as f:
            f.write(deny)
    with open(os.path.join(case_dir, "queries"), "w") as f:
        for _ in range(n_queries):
            f.write("%s %s\n" % probe(rng))


# ---------------------------------------------------------------------------------------------
# Comparison (the rules of tests/conformance.rs), with classes.

# knockwrap errors on lines tcpdchk does not flag that docs/hosts_access.md documents as
# deliberate strictness ("Deliberately stricter than tcpdchk"), by code; `bad-net-mask` only for
# IPv6 lengths that are not plain digits.
DELIBERATE = {
    "net-host-bits": "1 net-host-bits",
    "except-without-pattern": "3 except-without-pattern",
    "nul-byte": "4 nul-byte",
    "control-byte": "5 control-byte",
    "missing-final-newline": "7 missing-final-newline",
    "line-too-long": "7 line-too-long",
}


def deliberate_class(code, message, line_text):
    if code in DELIBERATE:
        return DELIBERATE[code]
    if code == "bad-net-mask" and "not a decimal number" in message:
        return "2 bad-net-mask (IPv6 length)"
    return None


def miss_class(text):
    t = re.sub(r"^(warning|error): hosts\.(allow|deny), line \d+: ", "", text)
    t = re.sub(r'"[^"]*"', '"X"', t)
    t = re.sub(r"^.*?: (host not found|user name|daemon name|domain or host name|bad net/mask|"
               r"No such file)", r"X: \1", t, flags=re.S)
    t = re.sub(r"unrecognized %.", "unrecognized %X", t, flags=re.S)
    return t


def knockwrap_json(binary, args):
    p = subprocess.run([binary] + args, capture_output=True, timeout=60)
    try:
        return p.returncode, json.loads(p.stdout), p.stderr.decode("utf-8", "replace")
    except ValueError:
        return p.returncode, None, p.stderr.decode("utf-8", "replace")


def physical_lines(path):
    data = open(path, "rb").read() if os.path.exists(path) else b""
    return data.split(b"\n")


def compare(binary, case_dir, exp, only_query=None, want_check=True):
    """[(kind, class, detail)] for one case; kind is match / miss / extra / deliberate."""
    out = []
    allow = os.path.join(case_dir, "hosts.allow")
    deny = os.path.join(case_dir, "hosts.deny")
    for q in exp["queries"]:
        if only_query is not None and q["query"] != only_query:
            continue
        code, got, err = knockwrap_json(binary, [
            "match", q["daemon"], q["client"], "--hosts-allow", allow, "--hosts-deny", deny,
            "--format", "json"])
        want = "%s %s:%s" % (q["verdict"], q["file"], q["line"])
        if got is None:
            cls = "refused scoped client" if "has a scope" in err else "refused"
            kind = "refused" if cls == "refused scoped client" else "match"
            out.append((kind, cls, "%s: expected %s, got exit %s: %s"
                        % (q["query"], want, code, err.strip()), q["query"]))
            continue
        if got["verdict"] != q["verdict"]:
            out.append(("match", "verdict %s, knockwrap %s" % (q["verdict"], got["verdict"]),
                        "%s: expected %s, got %s" % (q["query"], want, got), q["query"]))
            continue
        gfile = os.path.basename(got["file"]) if got["file"] else None
        ok = gfile == q["file"]
        if ok and q["file"]:
            a, b = q["lines"]
            ok = got["line"] is not None and a <= got["line"] <= b
        if not ok and q["file"] is None and gfile:
            # libwrap stopped at an unterminated line in hosts.deny; knockwrap may name it.
            ok = any(f["file"] == gfile and f["lines"][0] <= got["line"] <= f["lines"][1]
                     and any("missing newline" in m for m in f["messages"])
                     for f in exp["check"]["flagged"])
        if not ok:
            out.append(("match", "rule location",
                        "%s: expected %s, got %s" % (q["query"], want, got), q["query"]))
    if not want_check:
        return out
    files = [os.path.join(case_dir, f) for f in exp["files"]]
    code, got, err = knockwrap_json(binary, ["check"] + files + ["--format", "json"])
    if got is None:
        return out + [("extra", "check failed", err.strip(), None)]
    diags = []
    for f in got["files"]:
        name = os.path.basename(f["path"])
        for d in f["diagnostics"]:
            diags.append((name, d["line"], d["severity"], d["code"], d["message"]))
    flagged = exp["check"]["flagged"]
    for f in flagged:
        a, b = f["lines"]
        if not any(n == f["file"] and a <= line <= b for n, line, _, _, _ in diags):
            for m in f["messages"]:
                out.append(("miss", miss_class(m),
                            "%s:%d-%d: tcpdchk says %r" % (f["file"], a, b, m), None))
    lines = {name: physical_lines(os.path.join(case_dir, name)) for name in exp["files"]}
    for name, line, sev, code_, msg in diags:
        if sev != "error":
            continue
        if any(f["file"] == name and f["lines"][0] <= line <= f["lines"][1] for f in flagged):
            continue
        text = lines[name][line - 1] if 0 < line <= len(lines[name]) else b""
        dc = deliberate_class(code_, msg, text)
        kind, cls = ("deliberate", dc) if dc else ("extra", code_)
        out.append((kind, cls, "%s:%d: knockwrap %s: %s" % (name, line, code_, msg), None))
    return out


# ---------------------------------------------------------------------------------------------
# Runner


class Run:
    def __init__(self, listener, version, binary):
        self.listener = listener
        self.version = version
        self.binary = binary

    def oracle_case(self, case_dir):
        oracle.CASES = os.path.dirname(case_dir)
        oracle.one_case(self.listener, self.version, os.path.basename(case_dir))
        with open(os.path.join(case_dir, "expected.json"), encoding="utf-8") as f:
            return json.load(f)

    def findings(self, case_dir, only_query=None, want_check=True):
        exp = self.oracle_case(case_dir)
        return exp, compare(self.binary, case_dir, exp, only_query, want_check)

    def minimise(self, case_dir, kind, cls, query):
        """Drops physical lines (and queries) while a finding of the same kind and class
        stays; returns the case directory of the smallest version."""
        work = case_dir + ".min"
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(case_dir, work)
        if query is not None:
            with open(os.path.join(work, "queries"), "w") as f:
                f.write(query + "\n")

        def still():
            try:
                _, found = self.findings(work, query, want_check=(kind != "match"))
            except SystemExit:
                return False
            return any(k == kind and c == cls for k, c, _, _ in found)

        if not still():
            return work
        for name in ("hosts.allow", "hosts.deny"):
            path = os.path.join(work, name)
            if not os.path.exists(path):
                continue
            changed = True
            while changed:
                changed = False
                data = open(path, "rb").read()
                parts = data.split(b"\n")
                for i in range(len(parts) - 1, -1, -1):
                    if len(parts) == 1 and not parts[0]:
                        break
                    trial = parts[:i] + parts[i + 1:]
                    new = b"\n".join(trial)
                    if new == data:
                        continue
                    with open(path, "wb") as f:
                        f.write(new)
                    if still():
                        parts, data, changed = trial, new, True
                    else:
                        with open(path, "wb") as f:
                            f.write(data)
            if name == "hosts.deny" and os.path.getsize(path) == 0:
                os.unlink(path)
                if not still():
                    open(path, "wb").close()
        self.oracle_case(work)
        return work


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def next_number(dirs):
    n = 0
    for d in dirs:
        if os.path.isdir(d):
            for name in os.listdir(d):
                m = re.match(r"^(\d{3})-", name)
                if m:
                    n = max(n, int(m.group(1)))
    return n + 1


def main(argv):
    ap = argparse.ArgumentParser(prog="oracle.sh --fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--out", default="/tmp/kw-fuzz")
    ap.add_argument("--knockwrap", default=os.path.join(ROOT, "target/debug/knockwrap"))
    ap.add_argument("--file", help="copy one minimised case per class into this directory")
    ap.add_argument("--report", help="write the summary as JSON here")
    ap.add_argument("--no-minimise", action="store_true")
    args = ap.parse_args(argv)
    binary = os.path.abspath(args.knockwrap)
    if not os.access(binary, os.X_OK):
        sys.exit("fuzz: %s is not executable (cargo build --bin knockwrap)" % binary)
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "cases"))
    os.makedirs(os.path.join(out, "findings"))

    listener = oracle.Listener()
    oracle.self_test(listener)
    version = oracle.tcpd_version()
    run = Run(listener, version, binary)
    rng = random.Random(args.seed)
    started = time.time()
    counts = {}
    examples = {}
    probes = 0
    refused = 0
    for i in range(args.cases):
        case_dir = os.path.join(out, "cases", "c%05d" % i)
        generate(rng, case_dir, args.queries)
        try:
            exp, found = run.findings(case_dir)
        except SystemExit as e:  # oracle.py gives up on a probe tcpdmatch has no verdict for
            found = [("oracle", "no verdict", str(e), None)]
            exp = {"queries": []}
        probes += len(exp["queries"])
        for kind, cls, detail, query in found:
            key = (kind, cls)
            counts[key] = counts.get(key, 0) + 1
            if key not in examples:
                examples[key] = (case_dir, query, detail)
        if (i + 1) % 500 == 0:
            print("fuzz: %d/%d cases, %.0f s" % (i + 1, args.cases, time.time() - started),
                  file=sys.stderr, flush=True)
    elapsed = time.time() - started

    filed = []
    number = next_number([args.file, os.path.join(HERE, "cases"), os.path.join(HERE, "pending")]
                         if args.file else [])
    for (kind, cls), (case_dir, query, detail) in sorted(examples.items()):
        if kind in ("deliberate", "refused", "oracle"):
            continue
        small = case_dir if args.no_minimise else run.minimise(case_dir, kind, cls, query)
        dest = os.path.join(out, "findings", "%s-%s" % (kind, slug(cls)))
        if os.path.exists(dest):
            shutil.rmtree(dest)
        shutil.copytree(small, dest)
        entry = {"kind": kind, "class": cls, "example": detail, "minimised": dest}
        if args.file:
            name = "%03d-fuzz-%s-%s" % (number, kind, slug(cls))
            number += 1
            target = os.path.join(os.path.abspath(args.file), name)
            os.makedirs(target)
            for f in ("hosts.allow", "hosts.deny"):
                if os.path.exists(os.path.join(dest, f)):
                    shutil.copy(os.path.join(dest, f), target)
            with open(os.path.join(target, "queries"), "w") as f:
                f.write("# found by fuzz.py --seed %d: %s %s\n" % (args.seed, kind, cls))
                if os.path.exists(os.path.join(dest, "queries")):
                    f.write(open(os.path.join(dest, "queries")).read())
            run.oracle_case(target)
            entry["filed"] = target
        filed.append(entry)

    by_kind = {}
    for (kind, cls), n in counts.items():
        by_kind.setdefault(kind, {})[cls] = n
    summary = {
        "seed": args.seed,
        "cases": args.cases,
        "probes": probes,
        "tool": version,
        "knockwrap": binary,
        "seconds": round(elapsed, 1),
        "match_disagreements": sum(by_kind.get("match", {}).values()),
        "documented_refusals": sum(by_kind.get("refused", {}).values()),
        "check_misses": sum(by_kind.get("miss", {}).values()),
        "check_extras": sum(by_kind.get("extra", {}).values()),
        "deliberate": sum(by_kind.get("deliberate", {}).values()),
        "classes": by_kind,
        "findings": filed,
    }
    print("fuzz: seed %d: %d cases, %d probes in %.0f s (%s)"
          % (args.seed, args.cases, probes, elapsed, version))
    for label, kind in (("match disagreements", "match"), ("documented refusals", "refused"),
                        ("check misses (tcpdchk flags, knockwrap silent)", "miss"),
                        ("check extras (knockwrap error, tcpdchk silent)", "extra"),
                        ("deliberate (documented stricter classes)", "deliberate"),
                        ("cases the oracle could not run", "oracle")):
        classes = by_kind.get(kind, {})
        print("  %s: %d" % (label, sum(classes.values())))
        for cls, n in sorted(classes.items(), key=lambda kv: -kv[1]):
            print("    %6d  %s" % (n, cls.replace("\n", "\\n")))
    for e in filed:
        print("  finding %s %s -> %s" % (e["kind"], e["class"], e.get("filed", e["minimised"])))
    if args.report:
        with open(args.report, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    summary["oracle_failures"] = sum(by_kind.get("oracle", {}).values())
    bad = (summary["match_disagreements"] + summary["check_misses"] + summary["check_extras"]
           + summary["oracle_failures"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    sys.exit("fuzz.py runs inside the oracle sandbox: bash tests/conformance/oracle.sh --fuzz ...")
