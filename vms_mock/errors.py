"""API errors of the emulator and their Django-REST-framework-shaped bodies (the ONE mapping).

Domain code raises these; the app turns them into responses in one handler. Shapes follow DRF:
``{"detail": "..."}`` for general errors, ``{"<field>": ["<message>"]}`` for validation.
"""

from __future__ import annotations

from typing import Any

UNIQUE_MSG = "This field must be unique."
NOT_FOUND_MSG = "Not found."
TOKEN_INVALID_MSG = "Token is invalid or expired"
NO_CREDENTIALS_MSG = "Authentication credentials were not provided."


class ApiError(Exception):
    status = 400

    def __init__(self, body: dict[str, Any] | str, status: int | None = None) -> None:
        if isinstance(body, str):
            body = {"detail": body}
        super().__init__(str(body))
        self.body = body
        if status is not None:
            self.status = status


class FieldError(ApiError):
    """400 naming one field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__({field: [message]}, 400)


class UniqueError(FieldError):
    def __init__(self, field: str) -> None:
        super().__init__(field, UNIQUE_MSG)


class NotFoundError(ApiError):
    status = 404

    def __init__(self, detail: str = NOT_FOUND_MSG) -> None:
        super().__init__({"detail": detail})


class ConflictError(ApiError):
    """409: the object is in use (e.g. a mapped volume, a view holding volumes)."""

    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__({"detail": detail})


class NotAuthenticated(ApiError):
    status = 401

    def __init__(self, detail: str = NO_CREDENTIALS_MSG) -> None:
        super().__init__({"detail": detail})


class TokenInvalid(ApiError):
    """403 with the text real clients look for to decide to log in again."""

    status = 403

    def __init__(self) -> None:
        super().__init__({"detail": TOKEN_INVALID_MSG, "code": "token_not_valid"})


class PermissionDenied(ApiError):
    status = 403

    def __init__(self, detail: str = "You do not have permission to perform this action.") -> None:
        super().__init__({"detail": detail})


class InsufficientCapacity(ApiError):
    status = 507

    def __init__(self, detail: str) -> None:
        super().__init__({"detail": detail})


def invalid_pk(field: str, value: Any) -> FieldError:
    return FieldError(field, f'Invalid pk "{value}" - object does not exist.')
