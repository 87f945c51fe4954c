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
  error: { code: string; message: string };
}

/** Status and body for anything thrown by a route; unknown errors are 500s with their message. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody } {
  // VnetError, and the errors of lower layers that carry the same codes (TransportError, …).
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && code in STATUS_BY_CODE) {
    return { status: STATUS_BY_CODE[code as VnetErrorCode], body: { error: { code, message: err.message } } };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: { code: 'VNET_ERR_INTERNAL', message } } };
}
