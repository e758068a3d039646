"""Field errors, worded as Kubernetes words them (k8s.io/apimachinery field.Error)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The error types of apimachinery's field package, with the text it prints for each.
_TYPE_TEXT = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
}

_NO_VALUE = object()


@dataclass(frozen=True)
class FieldError:
    """One problem with one field. `path` is the JSON path as Kubernetes prints it:
    `spec.ports[0].port`, `metadata.labels`, `spec.rules[1].http.paths[0].path`."""

    type: str  # one of the keys of _TYPE_TEXT
    path: str
    value: Any = _NO_VALUE
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {_TYPE_TEXT.get(self.type, self.type)}"
        if self.type in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong",
                         "InternalError") or self.value is _NO_VALUE:
            return f"{text}: {self.detail}" if self.detail else text
        return f"{text}: {_render(self.value)}" + (f": {self.detail}" if self.detail else "")

    @property
    def reason(self) -> str:
        """The `reason` of the StatusCause that carries this error."""
        return self.type


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, detail=detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, value, detail)


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in supported)
    return FieldError("FieldValueNotSupported", path, value, detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, detail=detail)


def too_long(path: str, value: Any, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, value, f"must have at most {limit} bytes")


def _render(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def invalid_message(kind: str, name: str, errors: list[FieldError]) -> str:
    """The message of a 422: `Service "web" is invalid: spec.ports[0].port: ...`."""
    if len(errors) == 1:
        return f'{kind} "{name}" is invalid: {errors[0]}'
    return f'{kind} "{name}" is invalid: [' + ", ".join(str(e) for e in errors) + "]"
