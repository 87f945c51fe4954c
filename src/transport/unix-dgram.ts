/**
 * Unix datagram transport: one Ethernet frame per datagram, as QEMU's
 * `-netdev dgram,local.type=unix,local.path=Q,remote.type=unix,remote.path=V`
 * sends them (from Q to V). We bind V and send to Q.
 *
 * With no remote path, the peer is whoever sent the last datagram; until one
 * arrives, frames toward the guest are dropped (`dropsOut`). When the peer
 * restarts, the next send reconnects to its path; until we send, the kernel
 * refuses the new peer's datagrams (we are still connected to the old one).
 *
 * The kernel queues at most `net.unix.max_dgram_qlen` (default 10) datagrams
 * per receiver; beyond that sends wait in the transport's backlog.
 */
import { closeSync, lstatSync, unlinkSync } from 'node:fs';

import { FdTransport } from './fd-transport.js';
import { nativeAddon } from './native.js';

/** Where to bind and whom to talk to. */
export interface UnixDgramOpenOptions {
  /** Path we bind (a stale socket there is replaced; any other file is an error). */
  localPath: string;
  /** The peer's bound path, or null to learn it from received datagrams. */
  remotePath: string | null;
}

/** Frames to and from a unix datagram peer. */
export class UnixDgramTransport extends FdTransport {
  readonly kind = 'unix-dgram';

  private constructor(
    fd: number,
    /** The path we are bound to; removed on close. */
    readonly localPath: string,
    remotePath: string | null,
  ) {
    super(fd, { peerPath: remotePath, learnPeer: remotePath === null });
  }

  /** Binds `localPath`; throws VNET_ERR_UNIX_DGRAM with errno text. */
  static open(options: UnixDgramOpenOptions): UnixDgramTransport {
    const fd = nativeAddon().openUnixDgram(options.localPath);
    try {
      return new UnixDgramTransport(fd, options.localPath, options.remotePath);
    } catch (error) {
      closeSync(fd);
      removeSocketFile(options.localPath);
      throw error;
    }
  }

  override close(): void {
    if (this.isClosed) return;
    super.close();
    removeSocketFile(this.localPath);
  }
}

/** Removes our socket file, and nothing else that may have taken its place. */
function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Already gone: nothing to clean up.
  }
}
