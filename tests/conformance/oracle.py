#!/usr/bin/env python3
"""Runs Debian's tcpdchk and tcpdmatch over every conformance case and writes expected.json.

Started by oracle.sh inside a network-less mount namespace whose /dev/log is ours: this program
binds /dev/log, collects every syslog datagram the tools send, and attributes them to the run
that sent them (a marker datagram is sent after each run; the listener returns everything that
arrived before it).

expected.json (one per case):
  tool:     installed tcpd version
  tcpdchk:  every message of `tcpdchk -d`, with file/line when it names one, and `ignorable`
            for environment noise (DNS, inetd.conf)
  check:    the verdict knockwrap check must reproduce: the (file, line) pairs tcpdchk flags
            with a message that is not ignorable
  queries:  per query line: tcpdmatch's verdict (granted/denied/delegated), the file/line of
            the rule that decided (from its "matched:" message; null when none matched), its
            stdout and non-ignorable messages
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.environ.get("KNOCKWRAP_ORACLE_CASES") or os.path.join(HERE, "cases")
LOG = "/dev/log"

# "<11>Nov 25 14:35:34 tcpdchk: warning: ..." (glibc's format; no pid without LOG_PID).
SYSLOG_RE = re.compile(rb"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d ([^:\[ ]+)(?:\[\d+\])?: (.*)$", re.S)
# "warning: hosts.allow, line 3: text" / "error: hosts.deny, line 1: text"
LOCATED_RE = re.compile(r"^(warning|error): (hosts\.(?:allow|deny)), line (\d+): (.*)$", re.S)
MATCHED_RE = re.compile(r"^matched:\s+(hosts\.(?:allow|deny)) line (\d+)$")

# Messages that depend on the machine, not on the file: name service answers (no network
# here, so every lookup fails), inetd.conf checks (Debian has no inetd.conf by default) and NIS.
NOISE = [
    (re.compile(p), why)
    for p, why in (
        (r"name lookup failed", "dns"),
        (r"address lookup failed", "dns"),
        (r"can't verify hostname", "dns"),
        (r"host name/name mismatch", "dns"),
        (r"host name/address mismatch", "dns"),
        (r"no such process name", "inetd"),
        (r"Using network configuration file", "inetd"),
        (r"cannot find your inetd\.conf", "inetd"),
        (r"netgroup", "nis"),
    )
]
# "TOKEN: host not found" is DNS noise for anything that could be a host name. A token with
# brackets or a slash can never resolve, and neither can an empty one: then tcpdchk is telling us
# it did not parse the token as an address pattern, which is a finding. A token ending in CR (CRLF file) is tcpdchk's own
# artefact, as the run time treats CR as a separator: `cr_retry` decides those.
HOST_NOT_FOUND_RE = re.compile(r"^warning: hosts\.(?:allow|deny), line \d+: (.*): host not found$", re.S)


def noise(text):
    """Why a message is environment noise, or None when it is a finding about the file."""
    for pattern, why in NOISE:
        if pattern.search(text):
            return why
    m = HOST_NOT_FOUND_RE.match(text)
    if m:
        token = m.group(1)
        if "\r" in token:
            return "crlf"
        # An empty token (`sshd@`, `root@`: nothing after the `@`) is no name either.
        if token and not re.search(r"[\[\]/]", token):
            return "dns"
    return None


def strip_cr(data):
    """Every CR made a blank: what the run time's tokenizer does with it (CR is one of its
    separators). Line structure is unchanged: backslash-CR-LF becomes backslash-blank-LF, which
    is no continuation either."""
    return data.replace(b"\r", b" ")


def cr_retry(listener, case_dir, msgs):
    """For "TOKEN-with-CR: host not found": run tcpdchk again with every CR made a blank; the
    message is a finding when tcpdchk still finds something wrong on that line (a CR inside
    `[2001:db8::1]` breaks it at run time, a trailing one does not; `*192.0.2.` + CR is a
    pattern ending in a dot once the CR is a separator)."""
    crlf = [m for m in msgs if m["noise"] == "crlf"]
    if not crlf:
        return
    with tempfile.TemporaryDirectory() as d:
        for name in ("hosts.allow", "hosts.deny"):
            src = os.path.join(case_dir, name)
            if os.path.exists(src):
                with open(src, "rb") as f, open(os.path.join(d, name), "wb") as g:
                    g.write(strip_cr(f.read()))
        _, again = run(listener, ["tcpdchk", "-d"], d)
    # An unterminated-line message names the line *before* the chunk: not this line's finding.
    still = {
        (m["file"], m["line"])
        for m in again
        if m["noise"] is None and "missing newline or line too long" not in m["text"]
        and "subsequent rules" not in m["text"]
    }
    for m in crlf:
        if (m["file"], m["line"]) in still:
            m.update(noise=None, ignorable=False)
        else:
            m["noise"] = "dns"


MARK = b"<15>knockwrap-oracle-mark "


class Listener:
    """Collects syslog datagrams from /dev/log on a thread, so a chatty tool never blocks."""

    def __init__(self, keep=True):
        self.keep = keep
        self.dropped = 0
        if os.path.exists(LOG):
            os.unlink(LOG)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(LOG)
        os.chmod(LOG, 0o666)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.cond = threading.Condition()
        self.pending = []
        self.marks = set()
        self.serial = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            data = self.sock.recv(1 << 17)
            with self.cond:
                if data.startswith(MARK):
                    self.marks.add(data[len(MARK):])
                    self.cond.notify_all()
                elif self.keep:
                    self.pending.append(data)
                else:
                    self.dropped += 1

    def drain(self):
        """Everything logged before now (datagrams on one socket arrive in order)."""
        self.serial += 1
        token = str(self.serial).encode()
        out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        out.sendto(MARK + token, LOG)
        out.close()
        with self.cond:
            if not self.cond.wait_for(lambda: token in self.marks, timeout=30):
                sys.exit("oracle: syslog listener lost the marker")
            self.marks.discard(token)
            got, self.pending = self.pending, []
        return got


def decode(data):
    m = SYSLOG_RE.match(data)
    text = (m.group(3) if m else data).decode("utf-8", "backslashreplace").rstrip("\n")
    prog = m.group(2).decode() if m else None
    msg = {"program": prog, "text": text, "level": None, "file": None, "line": None}
    loc = LOCATED_RE.match(text)
    if loc:
        msg.update(level=loc.group(1), file=loc.group(2), line=int(loc.group(3)))
    elif text.startswith("warning: ") or text.startswith("error: "):
        msg["level"] = text.split(":", 1)[0]
    why = noise(text)
    msg["ignorable"] = why is not None
    msg["noise"] = why
    return msg


BUFLEN = 2048  # libwrap's BUFLEN: fgets reads at most 2047 bytes


def xgets_chunks(data):
    """Replays Debian libwrap's xgets() over a file's bytes.

    Returns one entry per chunk xgets hands to table_match/tcpdchk: `counter` is libwrap's
    line number when that chunk is processed (it counts newlines only, so a newline-less chunk
    keeps the previous line's number and a NUL makes later numbers lag), `first`/`last` the
    physical lines (1-based, a final fragment without newline counts) its bytes came from, and
    `newline` whether it ends in a newline (the run time stops at the first one that does not).
    """
    pos, counter, out = 0, 0, []

    def phys(offset):
        return data.count(b"\n", 0, offset) + 1

    while True:
        start, length, buf = pos, BUFLEN, b""
        ended = False
        while length > 1 and pos < len(data):
            # fgets(ptr, length): up to length-1 bytes, stopping after a newline
            nl = data.find(b"\n", pos, pos + length - 1)
            stop = nl + 1 if nl >= 0 else min(len(data), pos + length - 1)
            got_bytes, pos = data[pos:stop], stop
            text = got_bytes.split(b"\0", 1)[0]  # strlen stops at a NUL
            got = len(text)
            if got >= 1 and text.endswith(b"\n"):
                counter += 1
                if got >= 2 and text[-2:-1] == b"\\":
                    got -= 2
                else:
                    buf += text
                    ended = True
                    break
            buf += text[:got]
            length -= got
        if not ended and not buf:
            return group_over_long(out)
        out.append({"counter": counter, "first": phys(start), "last": phys(max(start, pos - 1)),
                    "newline": ended, "text": buf})


def group_over_long(chunks):
    """An over-long line comes out as newline-less chunks plus a tail that tcpdchk reads as a
    line of its own; all of them stand for the same line of the file, so each gets the span of
    the whole group (`span`)."""
    group = []
    for c in chunks:
        group.append(c)
        if c["newline"] or c is chunks[-1]:
            span = [min(g["first"] for g in group), max(g["last"] for g in group)]
            for g in group:
                g["span"] = span
            group = []
    return chunks


def span_of(chunks, line, too_long):
    """Physical lines a libwrap line number can stand for (see xgets_chunks)."""
    hits = [c for c in chunks if c["counter"] == line and c["newline"] != too_long]
    if not hits:
        return None
    return [min(c["span"][0] for c in hits), max(c["span"][1] for c in hits)]


def run(listener, argv, cwd):
    listener.drain()  # nothing stale may be attributed to this run
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=120)
    msgs = [decode(d) for d in listener.drain()]
    return proc, msgs


def self_test(listener):
    """A file tcpdchk must complain about: proves the capture works before trusting silence."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "hosts.allow"), "wb") as f:
            f.write(b"sshd 192.0.2.1\n")
        _, msgs = run(listener, ["tcpdchk", "-d"], d)
    if not any(m["line"] == 1 and "separator" in m["text"] for m in msgs):
        sys.exit("oracle: syslog capture does not work (tcpdchk said %r)" % msgs)


def tcpd_version():
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "tcpd"], capture_output=True, text=True
        )
        return "tcpd " + out.stdout.strip()
    except OSError:
        return "tcpd (unknown version)"


def parse_queries(path):
    queries = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                sys.exit("oracle: %s: bad query line %r" % (path, line))
            queries.append(parts)
    return queries


def file_chunks(case_dir):
    chunks = {}
    for name in ("hosts.allow", "hosts.deny"):
        path = os.path.join(case_dir, name)
        data = open(path, "rb").read() if os.path.exists(path) else b""
        chunks[name] = xgets_chunks(data)
    return chunks


def locate(chunks, file, line, text):
    """[first, last] physical lines behind a libwrap (file, line) report."""
    too_long = "missing newline or line too long" in text or "subsequent rules" in text
    return span_of(chunks[file], line, too_long) or [line, line]


def match_query(listener, case_dir, chunks, daemon, client):
    proc, msgs = run(listener, ["tcpdmatch", "-d", daemon, client], case_dir)
    stdout = proc.stdout.decode("utf-8", "backslashreplace")
    verdicts = re.findall(r"^access:\s+(\S+)", stdout, re.M)
    matched = [MATCHED_RE.match(m["text"]) for m in msgs]
    matched = [m for m in matched if m]
    file = matched[-1].group(1) if matched else None
    line = int(matched[-1].group(2)) if matched else None
    entry = {
        "query": "%s %s" % (daemon, client),
        "daemon": daemon,
        "client": client,
        "verdict": verdicts[-1] if verdicts else None,
        "file": file,
        "line": line,
        # the physical lines of the deciding rule; tcpdmatch names the last one of a continued rule
        "lines": locate(chunks, file, line, "") if file else None,
        "exit_code": proc.returncode,
        "stdout": stdout,
        "stderr": proc.stderr.decode("utf-8", "backslashreplace"),
        "messages": [m["text"] for m in msgs if not m["ignorable"] and not MATCHED_RE.match(m["text"])],
    }
    if entry["verdict"] is None:
        sys.exit("oracle: %s: tcpdmatch gave no verdict for %s %s:\n%s%s"
                 % (case_dir, daemon, client, stdout, entry["stderr"]))
    return entry


def one_case(listener, version, name):
    case_dir = os.path.join(CASES, name)
    files = [f for f in ("hosts.allow", "hosts.deny") if os.path.exists(os.path.join(case_dir, f))]
    chunks = file_chunks(case_dir)
    proc, msgs = run(listener, ["tcpdchk", "-d"], case_dir)
    cr_retry(listener, case_dir, msgs)
    flagged = {}
    for m in msgs:
        if m["file"] and not m["ignorable"]:
            m["lines"] = locate(chunks, m["file"], m["line"], m["text"])
            key = (m["file"], m["lines"][0], m["lines"][1])
            flagged.setdefault(key, []).append(m["text"])
    order = sorted(flagged, key=lambda k: (k[0] != "hosts.allow", k[1], k[2]))
    queries = [
        match_query(listener, case_dir, chunks, d, c)
        for d, c in parse_queries(os.path.join(case_dir, "queries"))
    ]
    expected = {
        "case": name,
        "tool": version,
        "files": files,
        "tcpdchk": {
            "exit_code": proc.returncode,
            "stdout": proc.stdout.decode("utf-8", "backslashreplace"),
            "messages": msgs,
        },
        # knockwrap check must put a diagnostic on one of `lines` for each entry
        "check": {
            "flagged": [
                {"file": f, "lines": [a, b], "messages": flagged[(f, a, b)]} for f, a, b in order
            ]
        },
        "queries": queries,
    }
    with open(os.path.join(case_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return len(queries), len(flagged)


def sink(argv):
    """`oracle.py --exec CMD...`: run CMD with the /dev/log listener in place (for benchmarks),
    so tcpdchk does all its reporting work; messages are counted, not kept."""
    listener = Listener()
    self_test(listener)
    listener.drain()
    listener.keep = False
    status = subprocess.run(argv).returncode
    listener.drain()
    print("oracle: %d syslog messages captured during the run" % listener.dropped, file=sys.stderr)
    sys.exit(status)


def main():
    if sys.argv[1:2] == ["--exec"]:
        sink(sys.argv[2:])
    if sys.argv[1:2] == ["--fuzz"]:
        sys.path.insert(0, HERE)
        import fuzz  # the differential fuzzer (fuzz.py), which needs this sandbox

        fuzz.main(sys.argv[2:])
    names = sys.argv[1:] or sorted(
        n for n in os.listdir(CASES) if os.path.isfile(os.path.join(CASES, n, "queries"))
    )
    listener = Listener()
    self_test(listener)
    version = tcpd_version()
    total_q = total_f = 0
    for name in names:
        name = os.path.basename(name.rstrip("/"))
        q, fl = one_case(listener, version, name)
        total_q += q
        total_f += fl
    print("oracle: %d cases, %d queries, %d flagged lines (%s)" % (len(names), total_q, total_f, version))


if __name__ == "__main__":
    main()
