/** Error codes → HTTP statuses, in one table; and the one error body shape. */
import type { VnetErrorCode } from '../errors.js';

export const STATUS_BY_CODE: Record<VnetErrorCode, number> = {
  VNET_ERR_BAD_REQUEST: 400,
  VNET_ERR_INVALID_VALUE: 400,
  VNET_ERR_NOT_FOUND: 404,
  VNET_ERR_EXISTS: 409,
  VNET_ERR_INVALID_STATE: 409,
  VNET_ERR_PORT_IN_USE: 409,
  VNET_ERR_PERMISSION: 403,
  VNET_ERR_NOT_SUPPORTED: 501,
  VNET_ERR_HOST: 500,
};

export interface ErrorBody {
  /** `field` names the body field a 400 is about, when it is about one. */
  error: { code: string; message: string; field?: string };
}

/** Status and body for anything thrown by a route; unknown errors are 500s with their message. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody } {
  // VnetError, and the errors of lower layers that carry the same codes (TransportError, …).
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && code in STATUS_BY_CODE) {
    const field = (err as { field?: unknown }).field;
    const error = typeof field === 'string' ? { code, message: err.message, field } : { code, message: err.message };
    return { status: STATUS_BY_CODE[code as VnetErrorCode], body: { error } };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: { code: 'VNET_ERR_INTERNAL', message } } };
}
