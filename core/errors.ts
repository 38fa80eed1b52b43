// Domain errors: what went wrong, in terms of the service, never of HTTP (api/errors.ts maps them once).

export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  /** The parameter or field at fault, e.g. `start_date` or `body`. */
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${field}: ${message}`, options);
  }
}

export class Unauthenticated extends Error {
  override readonly name = 'Unauthenticated';
}

export class Forbidden extends Error {
  override readonly name = 'Forbidden';
}

export class NotFound extends Error {
  override readonly name = 'NotFound';
}

export class PayloadTooLarge extends Error {
  override readonly name = 'PayloadTooLarge';
}

export class RateLimited extends Error {
  override readonly name = 'RateLimited';
  constructor(
    readonly retryAfterSeconds: number,
    message: string,
  ) {
    super(message);
  }
}

/** The storage (ClickHouse) or the broker does not answer. */
export class Unavailable extends Error {
  override readonly name = 'Unavailable';
}
