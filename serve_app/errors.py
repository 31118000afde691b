"""Errors a caller can see. Each maps to one HTTP status and one JSON body (ErrorResponse)."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, field: str | None = None, retry_after_s: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s


class BadRequest(ServiceError):
    status_code, error_type = 400, "malformed_request"


class PayloadTooLarge(ServiceError):
    status_code, error_type = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code, error_type = 415, "unsupported_media_type"


class InvalidField(ServiceError):
    status_code, error_type = 422, "validation_error"


class PromptRejected(InvalidField):
    error_type = "prompt_blocked"


class TooManyRequests(ServiceError):
    status_code, error_type = 429, "rate_limited"


class Overloaded(ServiceError):
    """The bounded queue in front of the model is full: retry later."""

    status_code, error_type = 503, "overloaded"


class NotReady(ServiceError):
    status_code, error_type = 503, "not_ready"


class ModelUnavailable(ServiceError):
    """The model replica that held the request failed; the request was not completed."""

    status_code, error_type = 503, "model_unavailable"


class InsufficientMemory(ServiceError):
    status_code, error_type = 503, "out_of_memory"


class RequestTimeout(ServiceError):
    status_code, error_type = 504, "timeout"


class ResponseTooLarge(ServiceError):
    status_code, error_type = 413, "response_too_large"


class ImageBlocked(ServiceError):
    """The image safety checker flagged the generated image; it is not returned."""

    status_code, error_type = 422, "image_blocked"
    MESSAGE = (
        "the generated image was flagged by the image safety checker and is not returned; "
        "try a different prompt or seed"
    )

    def __init__(self, message: str = MESSAGE):
        super().__init__(message)


class HTTPError(ServiceError):
    """An error HTTP routing itself raises (no such route: 404, wrong method: 405, ...)."""

    def __init__(self, status_code: int, error_type: str, message: str):
        super().__init__(message)
        self.status_code, self.error_type = status_code, error_type


class ShuttingDown(ServiceError):
    """The instance had to stop before this request finished; it was not completed: retry it."""

    status_code, error_type = 503, "shutting_down"
