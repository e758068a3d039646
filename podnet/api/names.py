"""Name and value syntax of the Kubernetes API (apimachinery's validation package, rewritten).

Each `is_*` function returns the list of problems with a value: empty when it is valid. The
wording follows Kubernetes, so users can search for the messages.
"""

from __future__ import annotations

import ipaddress
import re

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"
_WILDCARD_SUBDOMAIN = r"\*\." + _DNS1123_SUBDOMAIN
_C_IDENTIFIER = "[A-Za-z_][A-Za-z0-9_]*"

_re = {k: re.compile(v) for k, v in {  # fullmatch: `$` would let a trailing newline in
    "l1123": _DNS1123_LABEL, "s1123": _DNS1123_SUBDOMAIN, "l1035": _DNS1035_LABEL,
    "qname": _QUALIFIED_NAME, "lvalue": _LABEL_VALUE, "wild": _WILDCARD_SUBDOMAIN,
    "cid": _C_IDENTIFIER,
}.items()}

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def is_dns1123_label(value: str) -> list[str]:
    errs = _max_len(value, DNS1123_LABEL_MAX)
    if not _re["l1123"].fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            f"'123-abc', regex used for validation is '{_DNS1123_LABEL}')")
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = _max_len(value, DNS1123_SUBDOMAIN_MAX)
    if not _re["s1123"].fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            f"'example.com', regex used for validation is '{_DNS1123_SUBDOMAIN}')")
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = _max_len(value, DNS1123_LABEL_MAX)
    if not _re["l1035"].fullmatch(value):
        errs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            f"'my-name',  or 'abc-123', regex used for validation is '{_DNS1035_LABEL}')")
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs = _max_len(value, DNS1123_SUBDOMAIN_MAX)
    if not _re["wild"].fullmatch(value):
        errs.append(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
            "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and "
            "end with an alphanumeric character (e.g. '*.example.com', regex used for validation "
            f"is '{_WILDCARD_SUBDOMAIN}')")
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label and annotation keys: an optional DNS subdomain prefix and '/', then a name."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs = ["prefix part must be non-empty"]
        else:
            errs = ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            f"'123-abc', regex used for validation is '{_QUALIFIED_NAME}') with an optional DNS "
            "subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
        return errs
    if len(name) > QUALIFIED_NAME_MAX:
        errs.append(f"name part must be no more than {QUALIFIED_NAME_MAX} characters")
    if not _re["qname"].fullmatch(name):
        errs.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            f"'123-abc', regex used for validation is '{_QUALIFIED_NAME}')")
    return errs


def is_label_value(value: str) -> list[str]:
    errs = _max_len(value, LABEL_VALUE_MAX)
    if not _re["lvalue"].fullmatch(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            f"or 'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')")
    return errs


def is_port_name(value: str) -> list[str]:
    """IANA_SVC_NAME: what named ports (containerPort.name, Service port names) must be."""
    errs: list[str] = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_c_identifier(value: str) -> list[str]:
    if _re["cid"].fullmatch(value):
        return []
    return ["a valid C identifier must start with alphabetic character or '_', followed by a "
            "string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or "
            f"'MyName', regex used for validation is '{_C_IDENTIFIER}')"]


def is_env_var_name(value: str) -> list[str]:
    """Kubernetes accepts any printable ASCII but '=' in env var names (relaxed since 1.30)."""
    if not value:
        return ["environment variable name must not be empty"]
    if "=" in value or any(not (32 <= ord(c) <= 126) for c in value):
        return ["a valid environment variable name must consist only of printable ASCII "
                "characters other than '='"]
    return []


def is_port_number(value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return ["must be between 1 and 65535, inclusive"]
    return []


def is_ip(value: str) -> list[str]:
    """A canonical IPv4 or IPv6 address (no leading zeros, no zone)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    if str(addr) != value:
        return [f'must be in canonical form ("{addr}")']
    return []


def is_cidr(value: str) -> list[str]:
    """A canonical CIDR: a network address with no host bits set."""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    if "/" not in value:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    if str(net) != value:
        return [f'must be in canonical form ("{net}")']
    return []


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    """ValidateObjectMeta's name check for most kinds; `prefix` is for generateName."""
    if prefix:
        name = mask_trailing_dash(name)
    return is_dns1123_subdomain(name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    if prefix:
        name = mask_trailing_dash(name)
    return is_dns1123_label(name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    if prefix:
        name = mask_trailing_dash(name)
    return is_dns1035_label(name)


def mask_trailing_dash(name: str) -> str:
    """generateName prefixes may end in '-': check them as if it were a letter."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-1] + "a"
    return name
