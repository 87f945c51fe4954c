/**
 * Request-body checks for the API: every refusal is a 400 whose message and
 * `field` name the offending field, so a client knows what to fix.
 */
import { VnetError } from '../errors.js';

/** A 400 about one field of the request body. */
export class FieldError extends VnetError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('VNET_ERR_BAD_REQUEST', `field '${field}': ${message}`);
  }
}

export type FieldKind = 'string' | 'boolean' | 'integer' | 'object' | 'string[]';

export interface FieldSpec {
  kind: FieldKind;
  required?: boolean;
  /** Allowed values of a string field. */
  oneOf?: readonly string[];
  /** Inclusive bounds of an integer field. */
  min?: number;
  max?: number;
}

/**
 * The body as an object whose fields of `spec` are each of the right kind.
 * Fields not in `spec` are refused unless `open` (bodies other modules extend).
 */
export function checkBody(body: unknown, spec: Record<string, FieldSpec>, { open = false } = {}): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new VnetError('VNET_ERR_BAD_REQUEST', 'request body must be a JSON object');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!open && !(key in spec)) throw new FieldError(key, `unknown field; expected one of ${Object.keys(spec).join(', ')}`);
  }
  for (const [key, field] of Object.entries(spec)) {
    const value = record[key];
    const name = key;
    if (value === undefined) {
      if (field.required) throw new FieldError(name, 'is required');
      continue;
    }
    checkValue(name, value, field);
  }
  return record;
}

function checkValue(name: string, value: unknown, field: FieldSpec): void {
  switch (field.kind) {
    case 'string':
      if (typeof value !== 'string') throw new FieldError(name, `must be a string, not ${describe(value)}`);
      if (field.oneOf && !field.oneOf.includes(value)) throw new FieldError(name, `must be one of ${field.oneOf.join(', ')}, not '${value}'`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw new FieldError(name, `must be true or false, not ${describe(value)}`);
      return;
    case 'integer': {
      const min = field.min ?? Number.MIN_SAFE_INTEGER;
      const max = field.max ?? Number.MAX_SAFE_INTEGER;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        throw new FieldError(name, `must be an integer ${min}-${max}, not ${describe(value)}`);
      }
      return;
    }
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FieldError(name, `must be an object, not ${describe(value)}`);
      return;
    case 'string[]':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new FieldError(name, `must be an array of strings, not ${describe(value)}`);
      return;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** `:n` of a NIC path as a slot number, or a 404. */
export function slotParam(text: string, slots: number): number {
  const slot = Number(text);
  if (!/^\d+$/.test(text) || slot < 1 || slot > slots) throw new VnetError('VNET_ERR_NOT_FOUND', `no NIC ${text}: VMs have NICs 1 to ${slots}`);
  return slot;
}
