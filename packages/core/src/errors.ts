import { isReasonCode, REASONS, type ReasonCode } from "./reasons.ts";

export type ErrorDetails = Record<string, unknown>;

/** The one error shape alpine reports, on every surface (CLI, sandboxd, control plane). */
export interface ErrorJson {
  error: string;
  exit_code: 1 | 2;
  reason_code: ReasonCode;
  retryable: boolean;
  details: ErrorDetails;
}

export class AlpineError extends Error {
  readonly reason: ReasonCode;
  readonly details: ErrorDetails;

  constructor(
    reason: ReasonCode,
    message: string,
    details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AlpineError";
    this.reason = reason;
    this.details = details;
  }

  get exitCode(): 1 | 2 {
    return REASONS[this.reason].exit;
  }

  get retryable(): boolean {
    return REASONS[this.reason].retryable;
  }

  get hint(): string {
    return REASONS[this.reason].hint;
  }

  toJSON(): ErrorJson {
    return {
      error: this.message,
      exit_code: this.exitCode,
      reason_code: this.reason,
      retryable: this.retryable,
      details: this.details,
    };
  }

  /** Rebuilds an error received as JSON (from sandboxd or the control plane), keeping its reason. */
  static fromJSON(value: unknown, fallback: ReasonCode = "internal_error"): AlpineError {
    const v = (value ?? {}) as Partial<ErrorJson>;
    const reason = isReasonCode(v.reason_code) ? v.reason_code : fallback;
    const message = typeof v.error === "string" ? v.error : "unknown error";
    const details = v.details && typeof v.details === "object" ? (v.details as ErrorDetails) : {};
    return new AlpineError(reason, message, details);
  }
}

/** Any thrown value as an AlpineError; unknown errors become internal_error with their message. */
export function toAlpineError(err: unknown): AlpineError {
  if (err instanceof AlpineError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AlpineError("internal_error", message, {}, { cause: err });
}
