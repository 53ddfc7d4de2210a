// Typed errors: one class per API error code (internal/api/errors.go).

/**
 * AetheriumError is the base of every error this SDK throws. status is the
 * HTTP status (0 when the server was not reached, 200 for an error event in
 * a streamed exec), code the API's error code ("not_found", ...).
 */
export class AetheriumError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds the server asked to wait (Retry-After), if it did. */
  readonly retryAfter?: number;

  constructor(message: string, opts: { status?: number; code?: string; retryAfter?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.status = opts.status ?? 0;
    this.code = opts.code ?? "";
    this.retryAfter = opts.retryAfter;
  }
}

/** The server could not be reached, or a stream broke mid-way. */
export class TransportError extends AetheriumError {}
/** 401: no API key, or a wrong, revoked or expired one. */
export class UnauthenticatedError extends AetheriumError {}
/** 403: the key's role may not do this. */
export class ForbiddenError extends AetheriumError {}
/** 404: no such object in the caller's project. */
export class NotFoundError extends AetheriumError {}
/** 400: the request was malformed or a field was invalid. */
export class InvalidArgumentError extends AetheriumError {}
/** 409: the object's state does not allow the request. */
export class ConflictError extends AetheriumError {}
/** 409: an object with that name exists. */
export class AlreadyExistsError extends ConflictError {}
/** 409: the object is not in the state the request needs. */
export class FailedPreconditionError extends ConflictError {}
/** 429: the project's quota is used up (retrying will not help). */
export class QuotaExceededError extends AetheriumError {}
/** 429: the key's rate limit; retryAfter says when to try again. */
export class RateLimitedError extends AetheriumError {}
/** 413: the request body was too large. */
export class TooLargeError extends AetheriumError {}
/** 415: wrong Content-Type. */
export class UnsupportedMediaTypeError extends AetheriumError {}
/** 422: well-formed but impossible (an unknown tool version, ...). */
export class UnprocessableError extends AetheriumError {}
/** 421: the Host header is not one the server answers. */
export class WrongHostError extends AetheriumError {}
/** 503: the server or a part it needs is unavailable; retry later. */
export class UnavailableError extends AetheriumError {}
/** 501: the server's runtime does not support this. */
export class UnimplementedError extends AetheriumError {}
/** 504: the server gave up waiting. */
export class ServerTimeoutError extends AetheriumError {}
/** 500: the server failed; its log says why. */
export class InternalError extends AetheriumError {}

/** An asynchronous task (create, delete, build, ...) ended failed. */
export class TaskFailedError extends AetheriumError {
  readonly task: { id: string; type: string; error?: string };
  constructor(task: { id: string; type: string; error?: string }) {
    super(`task ${task.id} (${task.type}) failed: ${task.error || "no reason given"}`, { code: "task_failed" });
    this.task = task;
  }
}

type ErrorClass = new (message: string, opts: { status?: number; code?: string; retryAfter?: number }) => AetheriumError;

const byCode: Record<string, ErrorClass> = {
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  invalid_argument: InvalidArgumentError,
  conflict: ConflictError,
  already_exists: AlreadyExistsError,
  failed_precondition: FailedPreconditionError,
  quota_exceeded: QuotaExceededError,
  rate_limited: RateLimitedError,
  too_large: TooLargeError,
  unsupported_media_type: UnsupportedMediaTypeError,
  unprocessable: UnprocessableError,
  wrong_host: WrongHostError,
  unavailable: UnavailableError,
  not_implemented: UnimplementedError,
  timeout: ServerTimeoutError,
  internal: InternalError,
};

const byStatus: Record<number, ErrorClass> = {
  400: InvalidArgumentError, 401: UnauthenticatedError, 403: ForbiddenError, 404: NotFoundError,
  409: ConflictError, 413: TooLargeError, 415: UnsupportedMediaTypeError, 421: WrongHostError,
  422: UnprocessableError, 429: RateLimitedError, 500: InternalError, 501: UnimplementedError,
  503: UnavailableError, 504: ServerTimeoutError,
};

/** errorFor is the typed error for an API error: by its code, else its status. */
export function errorFor(status: number, code: string, message: string, retryAfter?: number): AetheriumError {
  const cls = (Object.hasOwn(byCode, code) ? byCode[code] : undefined) ?? byStatus[status] ?? AetheriumError;
  return new cls(message, { status, code, retryAfter });
}
