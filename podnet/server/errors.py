"""API errors as Kubernetes Status objects (metav1.Status), with its codes and reasons."""

from __future__ import annotations

from typing import Any

from podnet.api.errors import FieldError, invalid_message
from podnet.api.resources import Resource


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(res: Resource, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": res.plural}
    if res.group:
        d["group"] = res.group
    return d


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.group_resource} "{name}" not found',
                    _details(res, name))


def no_such_resource() -> ApiError:
    """A path that names no resource (kube-apiserver's words for it)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{res.group_resource} "{name}" already exists',
                    _details(res, name))


def conflict(res: Resource, name: str, why: str | None = None) -> ApiError:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.group_resource} "{name}": {why}',
                    _details(res, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(res: Resource, name: str, errors: list[FieldError]) -> ApiError:
    causes = []
    for e in errors:
        text = str(e)
        prefix = f"{e.path}: "
        causes.append({"reason": e.type, "message": text[len(prefix):] if
                       text.startswith(prefix) else text, "field": e.path})
    details: dict[str, Any] = {"name": name, "kind": res.kind, "causes": causes}
    if res.group:
        details["group"] = res.group
    return ApiError(422, "Invalid", invalid_message(res.kind, name, errors), details)


def forbidden(res: Resource, name: str, why: str) -> ApiError:
    return ApiError(403, "Forbidden", f'{res.group_resource} "{name}" is forbidden: {why}',
                    _details(res, name))


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types '
                    f'include: application/json-patch+json, application/merge-patch+json, '
                    f'application/strategic-merge-patch+json (got "{content_type}")')


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")
