"""The WebSocket protocol driven by a client we did not write: Python `websockets` (its sans-I/O
protocol object, over Python's own TLS) and `msgpack`, in both codecs.

For each codec (`articula.v1+json` text frames, `articula.v1+msgpack` binary frames) it signs in
over REST as a doctor, creates a case and reads its id from REST, then runs two groups of checks,
reported separately so that each can be judged on its own:

  ordering   one socket; auth, subscribe and 51 post_message frames queued and sent in ONE TCP
             write (a single send() of every TLS byte, checked); then: exactly one answer per
             frame id, answers in send order (auth ack, subscribe ack, the posts' acks), every post
             acked with a seq, seqs strictly increasing in send order, and the 51 message_posted
             events on the same socket in send order with the same texts.
  ids        fresh sockets, one command at a time (nothing depends on pipelining): every id field
             in every received frame is a str equal to what REST returns; the REST string id is
             accepted in every id field of client frames (the MessagePack contract of DESIGN §3);
             a malformed id is refused (negative control); MessagePack still reads the legacy
             16-byte form; frames arrive as the codec's frame type.

    python ws_protocol.py [ordering] [ids]     # default: both groups

Environment: WSTEST_BASE_URL (https://127.0.0.1:PORT), WSTEST_CA (the server's self-signed
certificate), WSTEST_EMAIL / WSTEST_PASSWORD (a doctor), WSTEST_POSTS (default 51).
Exit status: 0 all selected groups passed, 1 ordering failed, 2 ids failed, 3 both, 4 setup error.
"""

import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import msgpack
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

JSON = "articula.v1+json"
MSGPACK = "articula.v1+msgpack"
CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Fields that hold ids (one id, or a list of ids) in server frames. `id` is the client's command
# id (any string), not one of these.
ID_FIELDS = {
    "case_id", "actor", "user_id", "message_id", "file_id", "approval_id", "proposal_id", "org_id",
    "clinic_id", "doctor_id", "lab_id", "reply_to",
}
ID_LIST_FIELDS = {"users", "attachments", "voided_approvals", "removed", "mentions"}


class Setup(Exception):
    """The test could not run (server unreachable, REST refused…): not a protocol finding."""


# --- reporting -------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.results = {"ordering": [], "ids": []}

    def check(self, group, codec, name, ok, detail=""):
        self.results[group].append((codec, name, ok, detail))
        mark = "PASS" if ok else "FAIL"
        line = f"  [{group}] {mark} {name}"
        if detail:
            line += f" — {detail}"
        print(line, flush=True)
        return ok

    def summary(self, groups):
        print("\n== summary ==")
        status = 0
        for bit, group in ((1, "ordering"), (2, "ids")):
            if group not in groups:
                print(f"{group}: not run")
                continue
            rs = self.results[group]
            failed = [r for r in rs if not r[2]]
            if failed:
                status |= bit
                print(f"{group}: FAIL ({len(failed)} of {len(rs)} checks failed)")
                for codec, name, _, detail in failed:
                    print(f"  - {codec}: {name}" + (f" — {detail}" if detail else ""))
            else:
                print(f"{group}: PASS ({len(rs)} checks)")
        return status


# --- REST ------------------------------------------------------------------------------------

class Rest:
    def __init__(self, base, ca):
        self.base = base.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca)
        self.token = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("accept", "application/json")
        if data is not None:
            req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise Setup(f"{method} {path}: HTTP {e.code} {e.read()[:300]!r}") from e
        except OSError as e:
            raise Setup(f"{method} {path}: {e}") from e


# --- one WebSocket over TLS, every byte written by us ----------------------------------------

class Socket:
    """A `websockets` sans-I/O client over an `ssl.SSLObject` with memory BIOs over a plain TCP
    socket: every write to the network is one explicit `send()` this class makes and counts."""

    def __init__(self, base, ca, subprotocol):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 443
        self.subprotocol = subprotocol
        self.binary = subprotocol == MSGPACK
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = ssl.create_default_context(cafile=ca)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=self.host)
        self.eof = False
        self._tls_handshake()
        self.ws = ClientProtocol(
            parse_uri(f"wss://{self.host}:{self.port}/api/v1/ws"),
            subprotocols=[Subprotocol(subprotocol)],
            max_size=2**22,
        )
        self.ws.send_request(self.ws.connect())
        self.flush()
        self.pending = []  # frames that arrived with the handshake response
        deadline = time.monotonic() + 10
        while True:
            events = self._pump(deadline)
            responses = [e for e in events if isinstance(e, Response)]
            self.pending += [e for e in events if not isinstance(e, Response)]
            if responses:
                break
            if self.eof or time.monotonic() > deadline:
                raise Setup("no WebSocket handshake response")
        if self.ws.handshake_exc is not None:
            raise Setup(f"WebSocket handshake refused: {self.ws.handshake_exc}")
        if self.ws.subprotocol != subprotocol:
            raise Setup(f"server chose subprotocol {self.ws.subprotocol!r}, not {subprotocol}")

    def _tls_handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_tls()
                data = self.sock.recv(65536)
                if not data:
                    raise Setup("the server closed the connection during the TLS handshake")
                self.incoming.write(data)
        self._send_tls()

    def _send_tls(self):
        """Writes every pending TLS byte with one send(); returns (bytes, number of writes)."""
        data = self.outgoing.read()
        if not data:
            return 0, 0
        sent = self.sock.send(data)
        writes = 1
        if sent < len(data):  # never for the small amounts here; counted, so a check can tell
            self.sock.sendall(data[sent:])
            writes += 1
        return len(data), writes

    def flush(self):
        """Hands everything the WebSocket protocol queued to TLS, then to the network."""
        plain = b"".join(self.ws.data_to_send())
        if plain:
            self.tls.write(plain)
        wire, writes = self._send_tls()
        return len(plain), wire, writes

    def queue(self, obj):
        if self.binary:
            self.ws.send_binary(msgpack.packb(obj, use_bin_type=True))
        else:
            self.ws.send_text(json.dumps(obj, separators=(",", ":")).encode())

    def send(self, obj):
        self.queue(obj)
        self.flush()

    def _pump(self, deadline):
        """Reads what arrives until `deadline` (at most one read); returns the protocol events."""
        if self.eof:
            return []
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(262144)
        except (socket.timeout, TimeoutError):
            return []
        if not data:
            self.eof = True
            self.ws.receive_eof()
        else:
            self.incoming.write(data)
            chunks = []
            while True:
                try:
                    chunks.append(self.tls.read(262144))
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    self.eof = True
                    break
            plain = b"".join(chunks)
            if plain:
                self.ws.receive_data(plain)
        events = self.ws.events_received()
        self.flush()  # pongs to the server's pings, close replies
        return events

    def frames(self, deadline):
        """Decoded server frames received until `deadline` (or as soon as some arrived).
        Each item is (opcode name, decoded value or None, raw bytes)."""
        events, self.pending = self.pending, []
        if not events:
            events = self._pump(deadline)
        out = []
        for e in events:
            if e.opcode in (Opcode.TEXT, Opcode.BINARY):
                try:
                    if e.opcode is Opcode.BINARY:
                        value = msgpack.unpackb(e.data, raw=False)
                    else:
                        value = json.loads(e.data.decode())
                except Exception:  # reported by the codec check
                    value = None
                out.append((e.opcode.name, value, bytes(e.data)))
            elif e.opcode is Opcode.CLOSE:
                out.append(("CLOSE", None, bytes(e.data)))
        return out

    def close(self):
        try:
            self.ws.send_close(1000)
            self.flush()
        except Exception:
            pass
        self.sock.close()


# --- helpers ---------------------------------------------------------------------------------

def show(v, limit=160):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "…"


def answer_of(frame):
    """(command id, 'ack'/'error', frame data) for an ack or error frame, else None."""
    if isinstance(frame, dict) and frame.get("type") in ("ack", "error"):
        data = frame.get("data") or {}
        return data.get("id"), frame["type"], data
    return None


def describe(kind, data):
    if kind == "ack":
        return "ack" + (f" seq {data['seq']}" if "seq" in data else "")
    return f"error {data.get('code')}: {data.get('message')}"


def is_decode_refusal(data):
    """The server's frame decoder refused the data (wrong type/shape), as opposed to a decision
    about a well-formed command (not_found, a file not of this case…)."""
    return data.get("code") in ("validation_failed", "unknown_field", "malformed_frame") and str(
        data.get("message", "")
    ).startswith("invalid `")


class IdAudit:
    """Every id field of every received frame: a str, canonical, and equal to REST's value.
    Frames are kept as they arrive and checked at the end, against REST read after the run."""

    def __init__(self):
        self.seen = []
        self.expect = {}  # field -> callable(value) -> None, or what REST has instead
        self.count = 0
        self.problems = []

    def walk(self, frame, where):
        self.seen.append((frame, where))

    def run(self, expect):
        self.expect, self.count, self.problems = expect, 0, []
        for frame, where in self.seen:
            self._visit(frame, where)

    def _visit(self, frame, where):
        def visit(v, path):
            if isinstance(v, dict):
                for k, x in v.items():
                    p = f"{path}.{k}"
                    if k in ID_FIELDS and x is not None:
                        self.one(k, x, p)
                    elif k in ID_LIST_FIELDS and isinstance(x, list):
                        for i, y in enumerate(x):
                            self.one(k, y, f"{p}[{i}]")
                    else:
                        visit(x, p)
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    visit(x, f"{path}[{i}]")

        visit(frame.get("data"), f"{where} {frame.get('type')}")

    def one(self, field, value, path):
        self.count += 1
        if not isinstance(value, str):
            kind = f"{len(value)}-byte bin" if isinstance(value, bytes) else type(value).__name__
            self.problems.append(f"{path} is {kind} {show(value, 60)}, not a str")
            return
        if not CANONICAL.match(value):
            self.problems.append(f"{path} = {value!r} is not a lowercase hyphenated UUID")
            return
        check = self.expect.get(field)
        if check:
            wrong = check(value)
            if wrong:
                self.problems.append(f"{path} = {value!r}, REST has {wrong}")


# --- the ordering group ----------------------------------------------------------------------

def ordering_group(rep, cfg, codec, ctx, audit, posts):
    tag = ctx["tag"]
    case_id = ctx["case_id"]
    ws = Socket(cfg["base"], cfg["ca"], codec)
    try:
        sent = [(f"{tag}-a", "auth"), (f"{tag}-s", "subscribe")]
        ws.queue({"v": 1, "type": "auth", "id": sent[0][0], "data": {"token": ctx["token"]}})
        ws.queue({"v": 1, "type": "subscribe", "id": sent[1][0], "data": {"case_id": case_id, "since": 0}})
        texts = []
        for i in range(1, posts + 1):
            cid = f"{tag}-m{i:02d}"
            text = f"ws_protocol {codec} {tag} #{i:02d}"
            texts.append(text)
            sent.append((cid, "post_message"))
            ws.queue({"v": 1, "type": "post_message", "id": cid, "data": {"case_id": case_id, "text": text}})
        plain, wire, writes = ws.flush()
        rep.check(
            "ordering", codec, f"{len(sent)} frames sent in one TCP write", writes == 1,
            f"{plain} bytes of WebSocket frames, {wire} bytes of TLS, {writes} send() call(s)",
        )
        want = {cid for cid, _ in sent}
        post_ids = [cid for cid, kind in sent if kind == "post_message"]
        answers, events, others = [], [], []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for op, frame, raw in ws.frames(min(deadline, time.monotonic() + 1)):
                if frame is None:
                    others.append((op, raw))
                    continue
                audit.walk(frame, "pipelined")
                a = answer_of(frame)
                if a:
                    answers.append(a)
                elif frame.get("type") == "event":
                    events.append(frame["data"])
            answered = {a[0] for a in answers}
            sub_ok = any(a[0] == sent[1][0] and a[1] == "ack" for a in answers)
            posted = [e for e in events if e.get("kind") == "message_posted" and e.get("case_id") == case_id]
            if want <= answered and (not sub_ok or len(posted) >= posts):
                break
            if want <= answered:
                deadline = min(deadline, time.monotonic() + 5)
            if ws.eof:
                break
        name = dict(sent)

        # Exactly one answer per frame id.
        counts = {}
        for cid, _, _ in answers:
            counts[cid] = counts.get(cid, 0) + 1
        missing = [c for c, _ in sent if c not in counts]
        twice = [c for c, n in counts.items() if n > 1]
        strangers = [show(a[2]) for a in answers if a[0] not in want]
        rep.check(
            "ordering", codec, "exactly one ack or error per frame id",
            not missing and not twice and not strangers,
            f"{len(answers)} answers for {len(sent)} frames"
            + (f"; unanswered: {missing[:5]}{'…' if len(missing) > 5 else ''}" if missing else "")
            + (f"; answered twice: {twice[:5]}" if twice else "")
            + (f"; answers to no frame sent: {strangers[:3]}" if strangers else ""),
        )

        # The answers, in send order: auth ack, subscribe ack, then each post's ack.
        by_id = {}
        for cid, kind, data in answers:
            by_id.setdefault(cid, (kind, data))
        order = [a[0] for a in answers if a[0] in want]
        expected = [c for c, _ in sent if c in set(order)]
        first_wrong = next((i for i, (got, exp) in enumerate(zip(order, expected)) if got != exp), None)
        detail = "answers arrived in send order"
        if first_wrong is not None:
            got = order[first_wrong]
            detail = (
                f"answer #{first_wrong + 1} is for {got} ({name[got]}: {describe(*by_id[got])}), "
                f"expected {expected[first_wrong]} ({name[expected[first_wrong]]})"
            )
        rep.check("ordering", codec, "answers come back in send order", first_wrong is None, detail)

        for cid, what in sent[:2]:
            got = by_id.get(cid)
            ok = got is not None and got[0] == "ack"
            rep.check(
                "ordering", codec, f"{what} ({cid}) acked", ok,
                "no answer" if got is None else describe(*got),
            )
        a_pos = order.index(sent[0][0]) if sent[0][0] in order else None
        s_pos = order.index(sent[1][0]) if sent[1][0] in order else None
        rep.check(
            "ordering", codec, "subscribe answered after the auth ack",
            a_pos is not None and s_pos is not None and a_pos < s_pos,
            f"auth answer #{None if a_pos is None else a_pos + 1}, "
            f"subscribe answer #{None if s_pos is None else s_pos + 1}",
        )

        refused = [(c, by_id[c]) for c in post_ids if c in by_id and (by_id[c][0] != "ack" or "seq" not in by_id[c][1])]
        codes = {}
        for _, (kind, data) in refused:
            k = data.get("code", "ack without seq") if kind == "error" else "ack without seq"
            codes[k] = codes.get(k, 0) + 1
        rep.check(
            "ordering", codec, f"every post ({posts}) acked with a seq",
            not refused and all(c in by_id for c in post_ids),
            f"{sum(1 for c in post_ids if c in by_id and by_id[c][0] == 'ack')} acked"
            + (f"; refused: {codes}, first {refused[0][0]}: {describe(*refused[0][1])}" if refused else ""),
        )

        seqs = [(c, by_id[c][1]["seq"]) for c in post_ids if c in by_id and by_id[c][0] == "ack" and "seq" in by_id[c][1]]
        inversion = next(((a, b) for a, b in zip(seqs, seqs[1:]) if not a[1] < b[1]), None)
        rep.check(
            "ordering", codec, "post seqs strictly increasing in send order",
            bool(seqs) and inversion is None and len(seqs) == posts,
            (f"{inversion[1][0]} got seq {inversion[1][1]} after {inversion[0][0]} got seq {inversion[0][1]}"
             if inversion else f"{len(seqs)} seqs: {seqs[0][1] if seqs else '-'}…{seqs[-1][1] if seqs else '-'}"),
        )

        posted = [e for e in events if e.get("kind") == "message_posted" and e.get("case_id") == case_id]
        got_texts = [(e.get("data") or {}).get("text") for e in posted]
        ours = [t for t in got_texts if t in set(texts)]
        wrong_at = next((i for i, (g, w) in enumerate(zip(ours, texts)) if g != w), None)
        ev_seq = {(e.get("data") or {}).get("text"): e.get("seq") for e in posted}
        ack_seq = {texts[i]: by_id[c][1].get("seq") for i, c in enumerate(post_ids) if c in by_id and by_id[c][0] == "ack"}
        seq_mismatch = [t for t in texts if t in ev_seq and t in ack_seq and ev_seq[t] != ack_seq[t]]
        ok = len(ours) == posts and len(got_texts) == posts and wrong_at is None and not seq_mismatch
        if not posted:
            detail = "no message_posted event received (the subscription did not take)"
        elif wrong_at is not None:
            detail = f"event #{wrong_at + 1} has text {ours[wrong_at]!r}, expected {texts[wrong_at]!r}"
        elif len(ours) != posts:
            detail = f"{len(ours)} of {posts} events received"
        elif seq_mismatch:
            t = seq_mismatch[0]
            detail = f"{t!r}: event seq {ev_seq[t]} but ack seq {ack_seq[t]}"
        else:
            detail = f"{len(ours)} events, seqs {posted[0].get('seq')}…{posted[-1].get('seq')}, same as the acks"
        rep.check("ordering", codec, f"the subscribed socket receives the {posts} message_posted events in send order", ok, detail)
        return others
    finally:
        ws.close()


# --- the ids group ---------------------------------------------------------------------------

class Session:
    """One socket, one command at a time: send, then read until its answer arrives."""

    def __init__(self, cfg, codec, audit, where):
        self.ws = Socket(cfg["base"], cfg["ca"], codec)
        self.codec = codec
        self.audit = audit
        self.where = where
        self.frames = []
        self.wrong_type = []
        self.n = 0
        self.tag = uuid.uuid4().hex[:10]

    def _take(self, deadline):
        for op, frame, raw in self.ws.frames(deadline):
            if op == "CLOSE":
                continue
            want = "BINARY" if self.codec == MSGPACK else "TEXT"
            if op != want or frame is None:
                self.wrong_type.append(f"{op} frame {show(raw, 60)}")
                continue
            self.frames.append(frame)
            self.audit.walk(frame, self.where)

    def command(self, ty, data, timeout=15):
        self.n += 1
        cid = f"{self.tag}-{ty}-{self.n}"
        start = len(self.frames)
        self.ws.send({"v": 1, "type": ty, "id": cid, "data": data})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.ws.eof:
            self._take(min(deadline, time.monotonic() + 1))
            for f in self.frames[start:]:
                a = answer_of(f)
                if a and a[0] == cid:
                    return a[1], a[2]
        return None, {}

    def wait_for(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.ws.eof:
            found = [f for f in self.frames if pred(f)]
            if found:
                return found[0]
            self._take(min(deadline, time.monotonic() + 1))
        return next((f for f in self.frames if pred(f)), None)

    def close(self):
        self.ws.close()


def ids_group(rep, cfg, codec, ctx, audit):
    case_id = ctx["case_id"]
    s = Session(cfg, codec, audit, "sequential")
    try:
        kind, data = s.command("auth", {"token": ctx["token"]})
        if not rep.check("ids", codec, "auth acked", kind == "ack", describe(kind, data) if kind else "no answer"):
            return
        welcome = s.wait_for(lambda f: f.get("type") == "welcome")
        uid = (welcome or {}).get("data", {}).get("user_id")
        rep.check(
            "ids", codec, "welcome.user_id is the str REST /me returns", uid == ctx["me"],
            f"{show(uid)} vs REST {ctx['me']!r}",
        )

        # Every id field of client frames, sent as the string REST gave.
        accepted = []

        def expect_ack(what, ty, body):
            kind, data = s.command(ty, body)
            ok = kind == "ack"
            accepted.append((what, ok, describe(kind, data) if kind else "no answer"))
            return kind, data

        def expect_accepted(what, ty, body, mentions=None):
            """A well-formed command about something that does not exist: any answer but a decode
            refusal shows the id was read (the domain's answer names it when `mentions`)."""
            kind, data = s.command(ty, body)
            ok = kind is not None and not (kind == "error" and is_decode_refusal(data))
            if ok and mentions and kind == "error":
                ok = mentions in str(data.get("message", "")) or data.get("code") == "not_found"
            accepted.append((what, ok, describe(kind, data) if kind else "no answer"))

        kind, sub = expect_ack("subscribe.case_id", "subscribe", {"case_id": case_id, "since": 0})
        text = f"ws_protocol ids {codec} {s.tag}"
        kind, post = expect_ack("post_message.case_id", "post_message", {"case_id": case_id, "text": text})
        ev = s.wait_for(lambda f: f.get("type") == "event" and (f.get("data") or {}).get("data", {}).get("text") == text)
        rep.check(
            "ids", codec, "the posted message comes back as an event on the socket", ev is not None,
            f"seq {ev['data'].get('seq')}" if ev else "no event",
        )
        msg_id = None
        rest_messages = ctx["rest"].call("GET", f"/api/v1/cases/{case_id}/messages?limit=200")
        for m in rest_messages:
            if m.get("text") == text:
                msg_id = m["id"]
        # Without the message (the post was refused), the message fields are still sent, with an id
        # of no message: any answer but a decode refusal shows the id was read.
        on_message = expect_ack
        if msg_id is None:
            rep.check("ids", codec, "REST lists the message posted on the socket", False, "not in GET /messages")
            msg_id, on_message = str(uuid.uuid4()), expect_accepted
        reply_text = text + " reply"
        on_message("post_message.reply_to", "post_message",
                   {"case_id": case_id, "text": reply_text, "reply_to": msg_id, "mentions": [ctx["me"], ctx["me"]]})
        # The reply's event names what it answers and whom it mentions (named twice, kept once),
        # as the strings REST gives, in this codec.
        reply = s.wait_for(lambda f: f.get("type") == "event" and (f.get("data") or {}).get("data", {}).get("text") == reply_text)
        rdata = ((reply or {}).get("data") or {}).get("data", {})
        rep.check(
            "ids", codec, "a reply's event carries reply_to and mentions (deduplicated) as REST strings",
            rdata.get("reply_to") == msg_id and rdata.get("mentions") == [ctx["me"]],
            f"reply_to {show(rdata.get('reply_to'))}, mentions {show(rdata.get('mentions'))}" if reply else "no event",
        )
        on_message("edit_message.message_id", "edit_message", {"case_id": case_id, "message_id": msg_id, "text": text + " (edited)"})
        expect_ack("mark_read.case_id", "mark_read", {"case_id": case_id, "seq": (post or {}).get("seq", 1)})
        expect_ack("typing.case_id", "typing", {"case_id": case_id})
        if ctx["lab_id"]:
            expect_ack("update_case.lab_id", "update_case", {"case_id": case_id, "lab_id": ctx["lab_id"]})
        expect_ack("subscribe_board.org_id", "subscribe_board", {"org_id": ctx["clinic_id"]})
        stranger = str(uuid.uuid4())
        expect_accepted("post_message.attachments[]", "post_message",
                        {"case_id": case_id, "text": "with a file", "attachments": [stranger]}, mentions=stranger)
        expect_accepted("decide_rx_proposal.proposal_id", "decide_rx_proposal",
                        {"case_id": case_id, "proposal_id": stranger, "accept": False})
        expect_accepted("decide_approval.approval_id", "decide_approval",
                        {"case_id": case_id, "approval_id": stranger, "decision": "approve"})
        on_message("delete_message.message_id", "delete_message", {"case_id": case_id, "message_id": msg_id})
        expect_ack("unsubscribe.case_id", "unsubscribe", {"case_id": case_id})
        bad = [f"{w}: {d}" for w, ok, d in accepted if not ok]
        rep.check(
            "ids", codec, f"REST string ids accepted in every id field ({len(accepted)} commands)", not bad,
            "; ".join(bad[:4]) if bad else ", ".join(w for w, _, _ in accepted),
        )

        # Negative control: the classifier above would see a refused id.
        kind, data = s.command("subscribe", {"case_id": "not-an-id"})
        rep.check(
            "ids", codec, "a malformed id is refused by the decoder (control)",
            kind == "error" and is_decode_refusal(data), describe(kind, data) if kind else "no answer",
        )
        if codec == MSGPACK:
            # The 16-byte form servers before the fix wrote: still read (protocol/src/v1/ids.rs).
            kind, data = s.command("subscribe", {"case_id": uuid.UUID(case_id).bytes, "since": 0})
            rep.check(
                "ids", codec, "legacy 16-byte bin case_id still accepted", kind == "ack",
                describe(kind, data) if kind else "no answer",
            )
        rep.check(
            "ids", codec, f"every frame arrives as a {'binary' if codec == MSGPACK else 'text'} frame and decodes",
            not s.wrong_type, "; ".join(s.wrong_type[:3]) or f"{len(s.frames)} frames",
        )
    finally:
        s.close()


# --- main ------------------------------------------------------------------------------------

def prepare(cfg, codec):
    rest = Rest(cfg["base"], cfg["ca"])
    login = rest.call("POST", "/api/v1/auth/login",
                      {"email": cfg["email"], "password": cfg["password"], "portal": "clinic"})
    rest.token = login["access_token"]
    me = rest.call("GET", "/api/v1/me")
    label = f"ws protocol {codec} {uuid.uuid4().hex[:8]}"
    created = rest.call("POST", "/api/v1/cases", {"label": label})
    listed = [c for c in rest.call("GET", "/api/v1/cases?limit=200") if c.get("label") == label]
    if len(listed) != 1 or listed[0]["id"] != created["id"]:
        raise Setup(f"GET /cases does not list the new case {created['id']} once")
    case = listed[0]
    labs = rest.call("GET", "/api/v1/labs")
    lab_ids = {lab["id"] for lab in labs}
    print(f"  REST: signed in as {me['id']}, case {case['id']} ({label!r}), clinic {case['clinic_id']}")
    return {
        "rest": rest, "token": login["access_token"], "me": me["id"], "case_id": case["id"],
        "clinic_id": case["clinic_id"], "lab_id": next(iter(sorted(lab_ids)), None), "lab_ids": lab_ids,
        "org_ids": {m["org_id"] for m in me.get("memberships", [])} | lab_ids,
        "tag": uuid.uuid4().hex[:12],
    }


def expectations(ctx):
    """What REST says each id field may be, read after the run."""
    rest = ctx["rest"]
    cases = {c["id"] for c in rest.call("GET", "/api/v1/cases?limit=200")}
    messages = {m["id"] for m in rest.call("GET", f"/api/v1/cases/{ctx['case_id']}/messages?limit=200")}

    def eq(want):
        return lambda v: None if v == want else repr(want)

    def member(name, values):
        return lambda v: None if v in values else f"no such {name}"

    return {
        # Events, presence, receipts: this case; board summaries: the doctor's cases.
        "case_id": member("case in GET /cases", cases),
        "actor": eq(ctx["me"]),
        "user_id": eq(ctx["me"]),
        "users": eq(ctx["me"]),
        "doctor_id": eq(ctx["me"]),
        "clinic_id": eq(ctx["clinic_id"]),
        "org_id": member("organisation of the user", ctx["org_ids"]),
        "lab_id": member("lab (GET /labs)", ctx["lab_ids"]),
        "message_id": member("message in GET /cases/{id}/messages", messages),
        "reply_to": member("message in GET /cases/{id}/messages", messages),
        "mentions": eq(ctx["me"]),
    }


def main():
    groups = [a for a in sys.argv[1:]] or ["ordering", "ids"]
    unknown = [g for g in groups if g not in ("ordering", "ids")]
    if unknown:
        print(f"unknown group(s) {unknown}: ordering, ids", file=sys.stderr)
        return 4
    cfg = {
        "base": os.environ["WSTEST_BASE_URL"], "ca": os.environ["WSTEST_CA"],
        "email": os.environ["WSTEST_EMAIL"], "password": os.environ["WSTEST_PASSWORD"],
    }
    posts = int(os.environ.get("WSTEST_POSTS", "51"))
    print(f"websockets + msgpack against {cfg['base']}; groups: {', '.join(groups)}")
    rep = Report()
    try:
        for codec in (JSON, MSGPACK):
            print(f"\n== {codec} ==")
            ctx = prepare(cfg, codec)
            audit = IdAudit()
            if "ordering" in groups:
                ordering_group(rep, cfg, codec, ctx, audit, posts)
            if "ids" in groups:
                ids_group(rep, cfg, codec, ctx, audit)
                audit.run(expectations(ctx))
                rep.check(
                    "ids", codec,
                    "every id field of every received frame is a str equal to REST's representation",
                    not audit.problems and audit.count > 0,
                    f"{audit.count} id fields checked" + (
                        f"; {len(audit.problems)} wrong, e.g. " + "; ".join(audit.problems[:3]) if audit.problems else ""),
                )
    except Setup as e:
        print(f"\nsetup failed: {e}", file=sys.stderr)
        return 4
    return rep.summary(groups)


if __name__ == "__main__":
    sys.exit(main())
