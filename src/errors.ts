/**
 * Operational errors: a stable `code`, a message a person can act on, and an
 * optional `cause`. The API maps codes to HTTP statuses in one table
 * (src/api/errors.ts); the CLI prints the message, never a stack.
 */
export type VnetErrorCode =
  | 'VNET_ERR_BAD_REQUEST'
  | 'VNET_ERR_INVALID_VALUE'
  | 'VNET_ERR_NOT_FOUND'
  | 'VNET_ERR_EXISTS'
  | 'VNET_ERR_INVALID_STATE'
  | 'VNET_ERR_PORT_IN_USE'
  | 'VNET_ERR_NOT_SUPPORTED'
  | 'VNET_ERR_PERMISSION'
  | 'VNET_ERR_HOST';

export class VnetError extends Error {
  constructor(
    readonly code: VnetErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VnetError';
  }
}

export const invalid = (message: string): VnetError => new VnetError('VNET_ERR_INVALID_VALUE', message);
export const notFound = (message: string): VnetError => new VnetError('VNET_ERR_NOT_FOUND', message);
export const invalidState = (message: string): VnetError => new VnetError('VNET_ERR_INVALID_STATE', message);
