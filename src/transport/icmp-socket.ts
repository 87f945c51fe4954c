/**
 * The host's ICMP socket for the NAT's echo (src/nat/icmp-echo.ts), through
 * the native addon (native/src/icmp.c): a ping socket where the host allows
 * one, else a raw socket.
 */
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import type { IcmpEchoSocket, IcmpEchoSocketHandlers } from '../nat/icmp-echo.js';
import { ICMP_ERROR_QUEUE_ENTRY, ICMP_META_SLOTS, nativeAddon, type NativeIcmpReceiver } from './native.js';

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/**
 * The host's ICMP socket through the native addon: a ping socket if the
 * host allows, else raw (`kind` forces one); sending from `bindAddress` when
 * given. Throws VNET_ERR_ICMP (with what each kind needs, or why the address
 * could not be bound) or NativeAddonMissingError.
 */
export function openNativeIcmpSocket(handlers: IcmpEchoSocketHandlers, kind?: 'ping' | 'raw', bindAddress?: string): IcmpEchoSocket {
  const addon = nativeAddon();
  const opened = addon.openIcmpSocket(kind ?? null, bindAddress ?? null);
  const fd = opened.fd;
  let closed = false;
  let receiver: NativeIcmpReceiver;
  let bytes = new Uint8Array(0);
  const deliver = (count: number): void => {
    const meta = receiver.rxMeta;
    for (let i = 0; i < count && !closed; i++) {
      const at = i * ICMP_META_SLOTS;
      const offset = meta[at]!;
      const length = meta[at + 1]!;
      const address = meta[at + 2]!;
      const info = meta[at + 3]!;
      if (offset + length > bytes.length) continue; // cut short: larger than a read
      const message = bytes.subarray(offset, offset + length);
      if ((info & ICMP_ERROR_QUEUE_ENTRY) !== 0) handlers.error(message, address, (info >>> 8) & 0xff, info & 0xff);
      else handlers.message(message, address);
    }
  };
  const fail = (reason: string): void => {
    if (closed) return;
    closed = true;
    receiver.close();
    handlers.failed(reason);
  };
  try {
    receiver = new addon.IcmpReceiver(fd, opened.kind === 'raw', deliver, fail);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  bytes = new Uint8Array(receiver.rxSlab);
  receiver.start();
  return {
    kind: opened.kind,
    send(message: Uint8Array, address: number): string | undefined {
      if (closed) return 'EBADF';
      try {
        addon.icmpSendTo(fd, message, address);
        return undefined;
      } catch (err) {
        const errno = (err as { errno?: unknown }).errno;
        return (typeof errno === 'number' && ERRNO_NAMES.get(errno)) || 'EIO';
      }
    },
    close(): void {
      if (closed) return;
      closed = true;
      receiver.close();
    },
  };
}
