"""Zone-file syntax for DNS test tables: a tiny parser and printer for podnet.dns.model.

A test case reads like dig's output:

    case("web.default.svc.cluster.local. A", '''
    web.default.svc.cluster.local. 30 IN A 10.96.0.20
    ''')
    case("nothere.default.svc.cluster.local. A", '''
    ;; AUTHORITY
    cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30
    ''', rcode="NXDOMAIN")

Records go to the ANSWER section until a `;; AUTHORITY` or `;; ADDITIONAL` line switches
section. Names are written absolute, with the final dot; `;` starts a comment elsewhere. Record
types: A, AAAA, NS, CNAME, PTR, TXT ("quoted" strings), SRV, SOA; TYPEnnn for others in
questions. `render` prints an Answer the same way (each section's lines sorted, since record
order within a section carries no meaning), so a failing test shows a readable diff.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from podnet.dns import model
from podnet.dns.model import Answer, Question, Record, Soa, Srv

TYPES = {"A": model.A, "NS": model.NS, "CNAME": model.CNAME, "SOA": model.SOA,
         "PTR": model.PTR, "TXT": model.TXT, "AAAA": model.AAAA, "SRV": model.SRV,
         "OPT": model.OPT, "AXFR": model.AXFR, "IXFR": model.IXFR, "ANY": model.ANY,
         "MX": 15, "HINFO": 13, "MAILA": 254, "MAILB": 253, "CAA": 257, "HTTPS": 65}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
CLASSES = {"IN": model.IN, "CH": 3, "HS": 4, "ANY": 255}
RCODES = {"NOERROR": model.NOERROR, "FORMERR": model.FORMERR, "SERVFAIL": model.SERVFAIL,
          "NXDOMAIN": model.NXDOMAIN, "NOTIMP": model.NOTIMP, "REFUSED": model.REFUSED}
RCODE_NAMES = {v: k for k, v in RCODES.items()}
SECTIONS = ("ANSWER", "AUTHORITY", "ADDITIONAL")


def _name(text: str) -> str:
    if not text.endswith("."):
        raise ValueError(f"names are written absolute, with the final dot: {text!r}")
    return text[:-1]


def _type(text: str) -> int:
    upper = text.upper()
    if upper in TYPES:
        return TYPES[upper]
    if upper.startswith("TYPE") and upper[4:].isdigit():
        return int(upper[4:])
    raise ValueError(f"unknown type {text!r}")


def question(text: str) -> Question:
    """`name. [CLASS] TYPE` -> Question."""
    fields = text.split()
    qclass = model.IN
    if len(fields) == 3:
        qclass = CLASSES[fields[1].upper()]
    elif len(fields) != 2:
        raise ValueError(f"a question is 'name. [CLASS] TYPE': {text!r}")
    return Question(_name(fields[0]), _type(fields[-1]), qclass)


def record(line: str) -> Record:
    """`name. ttl IN TYPE rdata` -> Record."""
    fields = shlex.split(line, posix=True) if '"' in line else line.split()
    name, ttl, rclass, rtype, *rdata = fields
    t = _type(rtype)
    data: model.Rdata
    if t in (model.A, model.AAAA):
        (data,) = rdata
    elif t in (model.NS, model.CNAME, model.PTR):
        data = _name(rdata[0])
    elif t == model.TXT:
        data = tuple(rdata)
    elif t == model.SRV:
        priority, weight, port, target = rdata
        data = Srv(int(priority), int(weight), int(port), _name(target))
    elif t == model.SOA:
        mname, rname, *numbers = rdata
        data = Soa(_name(mname), _name(rname), *(int(n) for n in numbers))
    else:
        raise ValueError(f"no rdata syntax for {rtype}")
    return Record(_name(name), t, int(ttl), data, CLASSES[rclass.upper()])


def sections(text: str) -> dict[str, list[Record]]:
    """Zone-file lines, with `;; AUTHORITY` / `;; ADDITIONAL` switches, -> records by section."""
    out: dict[str, list[Record]] = {s: [] for s in SECTIONS}
    current = "ANSWER"
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(";;"):
            current = line[2:].strip().upper()
            if current not in out:
                raise ValueError(f"unknown section {line!r}")
            continue
        if line.startswith(";"):
            line = ""
        if line:
            out[current].append(record(line))
    return out


def rdata_text(r: Record) -> str:
    d = r.rdata
    if isinstance(d, Srv):
        return f"{d.priority} {d.weight} {d.port} {d.target}."
    if isinstance(d, Soa):
        return (f"{d.mname}. {d.rname}. {d.serial} {d.refresh} {d.retry} {d.expire} "
                f"{d.minimum}")
    if isinstance(d, tuple):
        return " ".join(f'"{s}"' for s in d)
    if r.rtype in (model.A, model.AAAA):
        return d
    return f"{d}."


def record_text(r: Record) -> str:
    cls = {v: k for k, v in CLASSES.items()}.get(r.rclass, f"CLASS{r.rclass}")
    rtype = TYPE_NAMES.get(r.rtype, f"TYPE{r.rtype}")
    return f"{r.name}. {r.ttl} {cls} {rtype} {rdata_text(r)}"


def render(a: Answer) -> str:
    """An Answer as text: a header line, then the sections (lines sorted within each)."""
    head = f"rcode={RCODE_NAMES.get(a.rcode, a.rcode)} aa={a.authoritative}"
    if a.forward is not None:
        head += f" forward={a.forward}."
    lines = [head]
    for title, records in zip(SECTIONS, (a.answer, a.authority, a.additional), strict=True):
        if records:
            lines.append(f";; {title}")
            lines.extend(sorted(record_text(r) for r in records))
    return "\n".join(lines)


def expected(text: str, rcode: str = "NOERROR", forward: str | None = None,
             aa: bool = True) -> Answer:
    s = sections(text)
    return Answer(rcode=RCODES[rcode], answer=tuple(s["ANSWER"]),
                  authority=tuple(s["AUTHORITY"]), additional=tuple(s["ADDITIONAL"]),
                  authoritative=aa, forward=None if forward is None else _name(forward))


def case(query: str, text: str = "", *, rcode: str = "NOERROR", forward: str | None = None,
         aa: bool = True, id: str | None = None, marks: Any = ()) -> Any:
    """One table row: the question and the expected answer, as a pytest.param."""
    return pytest.param(question(query), expected(text, rcode, forward, aa),
                        id=id or query, marks=marks)
