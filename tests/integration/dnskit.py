"""dig's output, parsed: shared by the DNS tests that run the real `dig`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Dig:
    status: str
    flags: set[str]
    answer: list[str] = field(default_factory=list)  # "name TYPE rdata" (no TTL)
    authority: list[str] = field(default_factory=list)
    additional: list[str] = field(default_factory=list)
    ttls: list[int] = field(default_factory=list)  # of the answer section
    raw: str = ""

    def rdata(self, rtype: str) -> list[str]:
        return sorted(line.split(None, 2)[2] for line in self.answer
                      if line.split()[1] == rtype)


def parse_dig(out: str) -> Dig:
    status = re.search(r"status: ([A-Z]+)", out)
    flags = re.search(r";; flags: ([a-z ]*);", out)
    d = Dig(status.group(1) if status else "NONE",
            set(flags.group(1).split()) if flags else set(), raw=out)
    section: list[str] | None = None
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = d.answer
        elif line.startswith(";; AUTHORITY SECTION"):
            section = d.authority
        elif line.startswith(";; ADDITIONAL SECTION"):
            section = d.additional
        elif not line.strip() or line.startswith(";"):
            section = None if not line.strip() else section
        elif section is not None:
            name, ttl, _cls, rtype, *rest = line.split()
            section.append(f"{name} {rtype} {' '.join(rest)}")
            if section is d.answer:
                d.ttls.append(int(ttl))
    return d
