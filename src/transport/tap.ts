/**
 * TAP device transport: a network namespace (or the host, for bridged and
 * host-only networks) on the other side of a kernel TAP device. The device is
 * opened inside the namespace by the native addon; the I/O is FdTransport's.
 */
import { closeSync } from 'node:fs';

import { FdTransport } from './fd-transport.js';
import { nativeAddon } from './native.js';

/** Which device, in which network namespace. */
export interface TapOpenOptions {
  /** Device name, at most 15 bytes; an existing (persistent) device of that name is attached to. */
  ifname: string;
  /** Network namespace to open it in, e.g. `/var/run/netns/NAME`; null or absent: the current one. */
  netnsPath?: string | null;
  /** IFF_VNET_HDR: each frame carries a virtio-net header. Off by default. */
  vnetHdr?: boolean;
  /**
   * Checksum offload and TSO (implies vnetHdr): 64 KiB TCP frames both ways,
   * no checksums to compute; and, where the kernel takes them, UDP
   * super-datagrams toward the guest.
   */
  offload?: boolean;
  /** IFF_MULTI_QUEUE; must match how a persistent device was created. */
  multiQueue?: boolean;
}

/** Frames to and from a TAP device. */
export class TapTransport extends FdTransport {
  readonly kind = 'tap';

  private constructor(
    private readonly fd: number,
    /** The device's name as the kernel gave it. */
    readonly ifname: string,
    vnetHeader: boolean,
    offload: boolean,
    /** The kernel cuts UDP super-datagrams we write (src/nat/udp-nat.ts batches a flow's datagrams so). */
    readonly acceptsUdpSegmentation: boolean,
  ) {
    super(fd, {}, { vnetHeader, offload });
  }

  /** Opens (creating if needed) the TAP device; throws VNET_ERR_NETNS or VNET_ERR_TAP_OPEN with errno text. */
  static open(options: TapOpenOptions): TapTransport {
    const offload = options.offload ?? false;
    const vnetHdr = offload || (options.vnetHdr ?? false);
    const { fd, ifname, udpSegmentation } = nativeAddon().openTap(options.ifname, options.netnsPath ?? null, {
      vnetHdr,
      offload,
      multiQueue: options.multiQueue ?? false,
    });
    try {
      return new TapTransport(fd, ifname, vnetHdr, offload, udpSegmentation);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Link state seen inside the namespace: off is a pulled cable (NO-CARRIER). */
  setCarrier(on: boolean): void {
    if (this.isClosed) return;
    nativeAddon().setCarrier(this.fd, on);
  }
}
