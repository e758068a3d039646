"""Label and field selectors, as the Kubernetes API understands them.

Label selectors come in three shapes and all end up as a `LabelSelector`:

- the string of the `labelSelector` query parameter (`app=web,tier in (a,b),!canary`),
  parsed by `parse_label_selector` with the grammar and error wording of apimachinery's
  `labels.Parse`;
- a `metav1.LabelSelector` inside an object (`matchLabels` + `matchExpressions`), read by
  `label_selector_from_api` (NetworkPolicy `podSelector`, ...);
- a plain map (`Service.spec.selector`), read by `selector_from_map`.

Field selectors (`fieldSelector=metadata.name=web,status.phase!=Running`) are parsed by
`parse_field_selector` and matched against the per-kind field sets of `field_set`; the fields
a kind supports are checked by `check_field_selector`, worded like kube-apiserver.

Everything here is pure: strings and dicts in, values out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnet.api import names, resources

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "check_field_selector",
    "convert_field_selector",
    "field_set",
    "label_selector_from_api",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_map",
]


class SelectorError(ValueError):
    """A label or field selector that cannot be parsed or is not allowed.

    The message is the one kube-apiserver would put in its 400 Bad Request."""


# ---------------------------------------------------------------------------------------------
# Label selectors: the model
# ---------------------------------------------------------------------------------------------

# The operators of apimachinery's selection package, by their string values.
IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

# In the order Kubernetes lists them in "expected: ..." messages.
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: `key <operator> values`.

    `values` is sorted and free of duplicates, as Kubernetes keeps them."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return has and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not has or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return has
        if self.operator == DOES_NOT_EXIST:
            return not has
        if self.operator in (GREATER_THAN, LESS_THAN):
            return has and _compare_int(labels[self.key], self.operator, self.values)
        return False

    def __str__(self) -> str:
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator == EXISTS:
            return self.key
        text = ",".join(self.values)
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({text})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{text}"


def _compare_int(value: str, operator: str, values: tuple[str, ...]) -> bool:
    if len(values) != 1:
        return False
    left, right = _go_int(value), _go_int(values[0])
    if left is None or right is None:
        return False
    return left > right if operator == GREATER_THAN else left < right


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): an optional sign and decimal digits only."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements, sorted by key.

    No requirements selects everything; `nothing=True` (a nil metav1.LabelSelector) selects
    nothing at all."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (selects every object)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value `key` must have to match (`key=v`, `key==v`, `key in (v)`), if any."""
        for r in self.requirements:
            if r.key == key:
                exact = r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1
                return r.values[0] if exact else None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sorted_by_key(reqs: list[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


def _go_quote(value: str) -> str:
    """Close enough to Go's %q for the values that reach an error message."""
    return json.dumps(value, ensure_ascii=False)


def _go_string_slice(values: list[str] | None) -> str:
    """How field.Invalid prints a []string: `[]string{"a", "b"}` or `[]string(nil)`."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _invalid(path: str, shown: str, detail: str) -> str:
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.Aggregate: one message as is, several de-duplicated inside brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _key_error(key: str, path: str) -> str | None:
    problems = names.is_qualified_name(key)
    return _invalid(path, _go_quote(key), "; ".join(problems)) if problems else None


def _new_requirement(key: str, operator: str, values: list[str] | None, *,
                     key_path: str = "key", values_path: str = "values") -> Requirement:
    """labels.NewRequirement: check the key, the number of values and each value."""
    errors: list[str] = []
    key_error = _key_error(key, key_path)
    if key_error:
        errors.append(key_error)
    count = len(values or [])
    if operator in (IN, NOT_IN) and count == 0:
        errors.append(_invalid(values_path, _go_string_slice(values),
                               "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and count != 1:
        errors.append(_invalid(values_path, _go_string_slice(values),
                               "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST) and count != 0:
        errors.append(_invalid(values_path, _go_string_slice(values),
                               "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if count != 1:
            errors.append(_invalid(values_path, _go_string_slice(values),
                                   "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(values or []):
            if _go_int(v) is None:
                errors.append(_invalid(f"{values_path}[{i}]", _go_quote(v),
                                       "for 'Gt', 'Lt' operators, the value must be an integer"))
    for i, v in enumerate(values or []):
        problems = names.is_label_value(v)
        if problems:
            errors.append(_invalid(f"{values_path}[{i}][{key}]", _go_quote(v),
                                   "; ".join(problems)))
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, tuple(sorted(set(values or []))))


# ---------------------------------------------------------------------------------------------
# Label selectors: the string syntax (labels.Parse)
# ---------------------------------------------------------------------------------------------

_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_TWO_CHAR_OPERATORS = ("==", "!=")
_KEYWORDS = frozenset((IN, NOT_IN))

# Token kinds.
_END = "end"
_IDENT = "identifier"


@dataclass(frozen=True)
class _Token:
    kind: str  # _END, _IDENT, a keyword ("in", "notin") or the symbol itself ("=", "(", ...)
    text: str

    def as_value(self) -> _Token:
        """Where values are expected, the keywords `in` and `notin` are plain identifiers."""
        return _Token(_IDENT, self.text) if self.kind in _KEYWORDS else self


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            out.append(_Token(_END, ""))
            return out
        if text[i] in _SPECIAL:
            symbol = text[i:i + 2] if text[i:i + 2] in _TWO_CHAR_OPERATORS else text[i]
            out.append(_Token(symbol, symbol))
            i += len(symbol)
            continue
        start = i
        while i < n and text[i] not in _SPECIAL and text[i] not in _WHITESPACE:
            i += 1
        word = text[start:i]
        out.append(_Token(word if word in _KEYWORDS else _IDENT, word))


class _LabelParser:
    """A recursive-descent parser over the token list, one requirement at a time."""

    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.pos = 0

    def peek(self, as_value: bool = True) -> _Token:
        tok = self.items[self.pos]
        return tok.as_value() if as_value else tok

    def take(self, as_value: bool = True) -> _Token:
        tok = self.peek(as_value)
        self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok = self.peek()
            if tok.kind == _END:
                return reqs
            if tok.kind not in (_IDENT, "!"):
                raise SelectorError(
                    f"found '{tok.text}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except SelectorError as e:
                raise SelectorError(f"unable to parse requirement: {e}") from None
            after = self.take()
            if after.kind == _END:
                return reqs
            if after.kind != ",":
                raise SelectorError(f"found '{after.text}', expected: ',' or 'end of string'")
            nxt = self.peek()
            if nxt.kind not in (_IDENT, "!"):
                raise SelectorError(f"found '{nxt.text}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        tok = self.take()
        if tok.kind == "!":
            negated = True
            tok = self.take()
        if tok.kind != _IDENT:
            raise SelectorError(f"found '{tok.text}', expected: identifier")
        key = tok.text
        key_error = _key_error(key, "<nil>")
        if key_error:
            raise SelectorError(key_error)
        if negated:
            return _new_requirement(key, DOES_NOT_EXIST, [])
        if self.peek().kind in (_END, ","):
            return _new_requirement(key, EXISTS, [])
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return _new_requirement(key, operator, sorted(set(values)))

    def operator(self) -> str:
        tok = self.take(as_value=False)
        ops = {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS,
               ">": GREATER_THAN, "<": LESS_THAN}
        if tok.kind not in ops:
            raise SelectorError(
                f"found '{tok.text}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok.kind]

    def value_set(self) -> list[str]:
        tok = self.take()
        if tok.kind != "(":
            raise SelectorError(f"found '{tok.text}' expected: '('")
        tok = self.peek()
        if tok.kind == ")":  # "()" is the set holding the empty string
            self.take()
            return [""]
        if tok.kind not in (_IDENT, ","):
            raise SelectorError(f"found '{tok.text}', expected: ',', ')' or identifier")
        values = self.identifier_list()
        if self.take().kind != ")":
            raise SelectorError(f"found '{tok.text}', expected: ')'")
        return values

    def identifier_list(self) -> list[str]:
        """Comma-separated, possibly empty, values; stops before the closing parenthesis."""
        values: list[str] = []
        while True:
            tok = self.take()
            if tok.kind == _IDENT:
                values.append(tok.text)
                nxt = self.peek()
                if nxt.kind == ",":
                    continue
                if nxt.kind == ")":
                    return values
                raise SelectorError(f"found '{nxt.text}', expected: ',' or ')'")
            if tok.kind != ",":
                raise SelectorError(f"found '{tok.text}', expected: ',', or identifier")
            if not values:
                values.append("")  # "(,x)": an empty first value
            nxt = self.peek()
            if nxt.kind == ")":
                values.append("")  # "(x,)": an empty last value
                return values
            if nxt.kind == ",":
                self.take()
                values.append("")  # "(x,,y)": an empty value in the middle

    def exact_value(self) -> list[str]:
        if self.peek().kind in (_END, ","):
            return [""]  # "key=" selects the empty value
        tok = self.take()
        if tok.kind != _IDENT:
            raise SelectorError(f"found '{tok.text}', expected: identifier")
        return [tok.text]


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the `labelSelector` query parameter. The empty string selects everything."""
    return LabelSelector(_sorted_by_key(_LabelParser(text).parse()))


# ---------------------------------------------------------------------------------------------
# Label selectors from objects
# ---------------------------------------------------------------------------------------------

_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_api(sel: dict[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: `{}` selects everything, None selects nothing."""
    if sel is None:
        return LabelSelector(nothing=True)
    if not isinstance(sel, dict):
        raise SelectorError(f"invalid label selector: {sel!r}")
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    if not isinstance(match_labels, dict) or not isinstance(expressions, list):
        raise SelectorError("invalid label selector: matchLabels must be a map and "
                            "matchExpressions a list")
    reqs = [_new_requirement(str(k), EQUALS, [_as_str(v)])
            for k, v in sorted(match_labels.items())]
    for expr in expressions:
        expr = expr if isinstance(expr, dict) else {}
        op_name = _as_str(expr.get("operator"))
        if op_name not in _API_OPERATORS:
            raise SelectorError(f"{_go_quote(op_name)} is not a valid label selector operator")
        raw = expr.get("values")
        values = [_as_str(v) for v in raw] if isinstance(raw, list) else None
        reqs.append(_new_requirement(_as_str(expr.get("key")), _API_OPERATORS[op_name], values))
    return LabelSelector(_sorted_by_key(reqs))


def selector_from_map(m: Mapping[str, str] | None) -> LabelSelector:
    """labels.SelectorFromSet: every pair must match exactly; an empty map selects everything.

    Like Kubernetes, the pairs are not validated here (validation of the object did that)."""
    return LabelSelector(_sorted_by_key([Requirement(k, EQUALS, (v,))
                                         for k, v in (m or {}).items()]))


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# Field selectors (fields.ParseSelector)
# ---------------------------------------------------------------------------------------------

_FIELD_OPERATORS = ("!=", "==", "=")  # "==" before "=" so no "=" is left on the value


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=", "==" or "!="
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        equal = fields.get(self.field, "") == self.value
        return not equal if self.operator == "!=" else equal

    def __str__(self) -> str:
        op = "!=" if self.operator == "!=" else "="
        return f"{self.field}{op}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of `field op value` terms. No terms selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        """The value `field` must equal (`field=v` / `field==v`), if the selector says so."""
        for r in self.requirements:
            if r.field == field and r.operator != "!=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    """fields.EscapeValue: backslash, comma and equals sign are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(
                    f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v, that is as its code point number.
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped; escapes stay in the terms."""
    if not text:
        return []
    terms: list[str] = []
    start, in_slash = 0, False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """The first operator in the term splits it; the field part has no escaping."""
    for i in range(len(term)):
        for op in _FIELD_OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the `fieldSelector` query parameter. The empty string selects everything."""
    reqs: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        parts = _split_term(term)
        if parts is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, raw = parts
        reqs.append(FieldRequirement(field, op, _unescape_field_value(raw)))
    return FieldSelector(tuple(reqs))


# ---------------------------------------------------------------------------------------------
# Selectable fields, per kind
# ---------------------------------------------------------------------------------------------

# Kinds with their own field label conversion in kube-apiserver (pkg/apis/core/v1): the labels
# they accept. Every other kind accepts metadata.name and metadata.namespace only.
_SUPPORTED_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("v1", "Pod"): frozenset((
        "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
        "status.podIP", "status.podIPs", "status.nominatedNodeName", "spec.host")),
    ("v1", "Node"): frozenset(("metadata.name", "spec.unschedulable")),
    ("v1", "Namespace"): frozenset(("metadata.name", "status.phase")),
    ("v1", "Secret"): frozenset(("metadata.name", "metadata.namespace", "type")),
    ("v1", "Service"): frozenset((
        "metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type")),
    ("v1", "Event"): frozenset((
        "metadata.name", "metadata.namespace", "involvedObject.kind",
        "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
}

# Labels old clients send that the server rewrites before matching.
_RENAMED_FIELDS = {("v1", "Pod"): {"spec.host": "spec.nodeName"}}

_DEFAULT_FIELDS = frozenset(("metadata.name", "metadata.namespace"))


def _unsupported(api_version: str, kind: str, label: str) -> SelectorError:
    if (api_version, kind) in _SUPPORTED_FIELDS:
        return SelectorError(f"field label not supported: {label}")
    return SelectorError(f'"{label}" is not a known field selector: only '
                         f'"metadata.name", "metadata.namespace"')


def convert_field_selector(api_version: str, kind: str, sel: FieldSelector) -> FieldSelector:
    """The selector as the server matches it: labels checked against what the kind supports
    and legacy labels renamed (`spec.host` -> `spec.nodeName` for pods)."""
    supported = _SUPPORTED_FIELDS.get((api_version, kind), _DEFAULT_FIELDS)
    renames = _RENAMED_FIELDS.get((api_version, kind), {})
    out: list[FieldRequirement] = []
    for r in sel.requirements:
        if r.field not in supported:
            raise _unsupported(api_version, kind, r.field)
        out.append(FieldRequirement(renames.get(r.field, r.field), r.operator, r.value))
    return FieldSelector(tuple(out))


def check_field_selector(api_version: str, kind: str, sel: FieldSelector) -> None:
    """Raise SelectorError for the first field label the kind does not support."""
    convert_field_selector(api_version, kind, sel)


def _dig(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _text(obj: Any, *path: str) -> str:
    return _as_str(_dig(obj, *path))


def _go_bool(value: Any) -> str:
    return "true" if value is True else "false"


def _pod_fields(obj: dict[str, Any]) -> dict[str, str]:
    pod_ips = _dig(obj, "status", "podIPs")
    if isinstance(pod_ips, list) and pod_ips:
        pod_ip = _text(pod_ips[0], "ip")
    else:  # an object that only carries the older singular field
        pod_ip = _text(obj, "status", "podIP")
    return {
        "spec.nodeName": _text(obj, "spec", "nodeName"),
        "spec.restartPolicy": _text(obj, "spec", "restartPolicy"),
        "spec.schedulerName": _text(obj, "spec", "schedulerName"),
        "spec.serviceAccountName": _text(obj, "spec", "serviceAccountName"),
        "spec.hostNetwork": _go_bool(_dig(obj, "spec", "hostNetwork")),
        "status.phase": _text(obj, "status", "phase"),
        "status.podIP": pod_ip,
        "status.nominatedNodeName": _text(obj, "status", "nominatedNodeName"),
    }


def _event_fields(obj: dict[str, Any]) -> dict[str, str]:
    involved = [("kind", "kind"), ("namespace", "namespace"), ("name", "name"), ("uid", "uid"),
                ("apiVersion", "apiVersion"), ("resourceVersion", "resourceVersion"),
                ("fieldPath", "fieldPath")]
    out = {f"involvedObject.{label}": _text(obj, "involvedObject", key)
           for label, key in involved}
    reporting = _text(obj, "reportingComponent")
    out["reason"] = _text(obj, "reason")
    out["reportingComponent"] = reporting
    out["source"] = _text(obj, "source", "component") or reporting
    out["type"] = _text(obj, "type")
    return out


def field_set(api_version: str, kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """The selectable fields of an object and their values, as kube-apiserver computes them.

    Namespaced kinds carry metadata.namespace; fields an object lacks are "" (which is also
    what a field selector compares a missing field against)."""
    res = resources.by_kind(api_version, kind)
    namespaced = res.namespaced if res is not None else bool(_text(obj, "metadata", "namespace"))
    out = {"metadata.name": _text(obj, "metadata", "name")}
    if namespaced:
        out["metadata.namespace"] = _text(obj, "metadata", "namespace")
    key = (api_version, kind)
    if key == ("v1", "Pod"):
        out.update(_pod_fields(obj))
    elif key == ("v1", "Event"):
        out.update(_event_fields(obj))
    elif key == ("v1", "Secret"):
        out["type"] = _text(obj, "type")
    elif key == ("v1", "Namespace"):
        out["status.phase"] = _text(obj, "status", "phase")
    elif key == ("v1", "Node"):
        out["spec.unschedulable"] = _go_bool(_dig(obj, "spec", "unschedulable"))
    elif key == ("v1", "Service"):
        out["spec.clusterIP"] = _text(obj, "spec", "clusterIP")
        out["spec.type"] = _text(obj, "spec", "type")
    return out
