/**
 * What vnet's JavaScript costs per short connection, with no system call on
 * the way: the frames of one guest→host connection (the `crr` row's: SYN,
 * a 1-byte request, a 1-byte answer, the guest closing first) go through a
 * real NAT LAN — switch, gateway, TCP NAT — from a guest port that is a
 * plain function, to a host stream played here.
 *
 *   node dist/bench/js-path.js [--connections 20000] [--rounds 8]
 *   node dist/bench/js-path.js --bulk [--batches 20000] [--frames 2] [--size 57344] [--rounds 8]
 *
 * Prints µs per connection (or batch) for each round (wall time and the
 * process's CPU), then the median of the rounds after the first two (the JIT's warm-up).
 * Exit status 1 when a connection does not go as a real one would (no
 * SYN-ACK, no FIN, flows left behind).
 *
 * `--bulk` measures a guest→host stream's batch instead (the TCP guest→host
 * row's unit of work): one connection, then batches of `--frames` data
 * segments of `--size` bytes each, as a TAP read hands them over, each
 * batch followed by its end-of-batch work (the host write, our ACK). Exit
 * status 1 when a batch is not acknowledged whole.
 *
 * Why: the `crr` rows cost vnet's daemon ~330 µs of CPU per connection, most
 * of it in the kernel and in V8's and Node's machinery around each event
 * (docs/performance.md). This measures the part that is the packet path's
 * own JS, on one CPU, without the scheduler's noise, so that a change to it
 * can be judged in seconds. Guest frames come with their checksum left to
 * offload, as from a TAP with offloads on.
 */
import { parseArgs } from 'node:util';
import { afterCall } from '../src/after-call.js';
import { NatLan } from '../src/daemon/nat-lan.js';
import type { HostStream, HostStreamEvents } from '../src/nat/tcp/host-stream.js';
import { segmentTimestamp, timestampOptionAt } from '../src/nat/tcp/timestamps.js';
import { ArpOperation, emitArp, ARP_PACKET_LENGTH } from '../src/wire/arp.js';
import { emitEthernet, EtherType, ETHERNET_HEADER_LENGTH } from '../src/wire/ethernet.js';
import { emitIpv4, IPV4_HEADER_LENGTH, IpProtocol } from '../src/wire/ipv4.js';
import { emitTcp, parseTcpOptions, TcpFlags, tcpLength, TcpView, type TcpOptions } from '../src/wire/tcp.js';
import { set32 } from '../src/wire/bytes.js';
import { newFrameOffload, VIRTIO_NET_HDR_F_NEEDS_CSUM } from '../src/wire/virtio-net.js';
import { median } from './report.js';

const GUEST_IP = 0x0a00020f; // 10.0.2.15
const GATEWAY_IP = 0x0a000202; // 10.0.2.2: the host's loopback (localhost reachable)
const SERVER_PORT = 5203;
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc);
const TCP_AT = ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH;
const GUEST_PORTS = 50000;
/** The window scale the guest's SYN offers. */
const GUEST_WINDOW_SCALE = 7;

/** A host connection that connects at once (as on loopback), takes every write and answers when told. */
class PlayedHost implements HostStream {
  writableLength = 0;
  destroyed = false;
  writableEnded = false;
  written = 0;

  constructor(readonly events: HostStreamEvents) {
    afterCall(() => events.onHostConnect()); // as the addon's stream reports a loopback connect
  }

  write(data: Uint8Array, written?: () => void): void {
    this.written += data.length;
    written?.();
  }
  tryWrite(data: Uint8Array): number {
    this.written += data.length;
    return data.length;
  }
  tryWriteGathered(chunks: readonly Uint8Array[]): number {
    let n = 0;
    for (const chunk of chunks) n += chunk.length;
    this.written += n;
    return n;
  }
  end(): void {
    this.writableEnded = true;
  }
  pause(): void {}
  resume(): void {}
  readNow(): void {}
  destroy(): void {
    this.destroyed = true;
  }
  reset(): void {
    this.destroyed = true;
  }
  wasReset(): boolean {
    return false;
  }

  /** The server's answer of `length` bytes arrives. */
  answer(length: number): void {
    const block = this.events.nextReadBlock();
    block.fill(0x61, 0, length);
    this.events.onHostRead(length, block);
  }
}

/** One guest frame, built once; `aim` rewrites its port, sequence numbers and timestamp echo in place. */
class GuestSegment {
  readonly frame: Uint8Array;
  private readonly tcp: TcpView;
  /** Where the timestamp option's echo is in `frame`; -1: none. */
  private readonly echoAt: number;

  constructor(gatewayMac: Uint8Array, flags: number, options: TcpOptions, payload = new Uint8Array(0)) {
    const segment = { sourcePort: 1, destinationPort: SERVER_PORT, sequenceNumber: 0, acknowledgmentNumber: 0, flags, windowSize: 502, options, payload };
    const length = tcpLength(segment);
    this.frame = new Uint8Array(TCP_AT + length);
    emitEthernet({ destination: gatewayMac, source: GUEST_MAC, etherType: EtherType.IPv4 }, this.frame, 0);
    emitIpv4({ source: GUEST_IP, destination: GATEWAY_IP, protocol: IpProtocol.TCP, ttl: 64, payloadLength: length, dontFragment: true }, this.frame, ETHERNET_HEADER_LENGTH);
    emitTcp(segment, this.frame, TCP_AT, { source: GUEST_IP, destination: GATEWAY_IP });
    this.tcp = new TcpView(this.frame.subarray(TCP_AT));
    const at = timestampOptionAt(this.tcp.bytes, this.tcp.headerLength);
    this.echoAt = at < 0 ? -1 : TCP_AT + at + 6; // kind, length, TSval, then TSecr
  }

  aim(port: number, seq: number, ack: number, echo: number): Uint8Array {
    this.tcp.sourcePort = port;
    this.tcp.sequenceNumber = seq;
    this.tcp.acknowledgmentNumber = ack;
    if (this.echoAt >= 0) set32(this.frame, this.echoAt, echo);
    return this.frame;
  }
}

/** What the guest heard: the SYN-ACK's and the FIN's sequence numbers, and the NAT's latest timestamp. */
interface Heard {
  synAckSeq: number;
  finSeq: number;
  timestamp: number;
  /** The shift of the NAT's window (its SYN-ACK's option), then its latest ACK's acknowledgment number and window. */
  shift: number;
  ack: number;
  window: number;
}

/** Lets the NAT's end-of-batch work (promise jobs, src/after-call.ts) run, as after a transport's batch. */
async function endOfBatch(): Promise<void> {
  for (let i = 0; i < 4; i++) await null;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '20000' },
      rounds: { type: 'string', default: '8' },
      bulk: { type: 'boolean', default: false },
      batches: { type: 'string', default: '20000' },
      frames: { type: 'string', default: '2' },
      size: { type: 'string', default: '57344' },
    },
  });
  const connections = Number(values.connections);
  const rounds = Number(values.rounds);
  const bulk = { batches: Number(values.batches), frames: Number(values.frames), size: Number(values.size) };
  if (!(connections > 0) || !(rounds > 2) || !(bulk.batches > 0) || !(bulk.frames > 0) || !(bulk.size > 0 && bulk.size <= 65000)) {
    console.error('js-path: --connections, --batches and --frames must be above 0, --rounds above 2, --size from 1 to 65000');
    return 2;
  }
  let host: PlayedHost | undefined;
  const lan = await NatLan.create({
    key: 'nat:js-path/nic1',
    cidr: '10.0.2.0/24',
    gatewayHost: 2,
    dnsHost: 3,
    dhcp: null,
    defaultGuestHost: 15,
    localhostReachable: true,
    dnsHostResolver: false,
    mtu: 65520,
    forwards: [],
    openHostStream: (_host, _port, events) => (host = new PlayedHost(events)),
  });
  const heard: Heard = { synAckSeq: -1, finSeq: -1, timestamp: 0, shift: 0, ack: -1, window: 0 };
  const port = lan.switch.attach({
    name: 'js-path/nic1',
    mac: GUEST_MAC,
    deliver: (frame) => {
      if (frame.length < TCP_AT + 20 || frame[ETHERNET_HEADER_LENGTH + 9] !== IpProtocol.TCP) return;
      const tcp = new TcpView(frame.subarray(TCP_AT));
      if (tcp.flags === (TcpFlags.SYN | TcpFlags.ACK)) {
        heard.synAckSeq = tcp.sequenceNumber;
        heard.shift = parseTcpOptions(tcp.options).windowScale ?? 0;
      }
      if (tcp.fin) heard.finSeq = tcp.sequenceNumber;
      heard.ack = tcp.acknowledgmentNumber;
      heard.window = tcp.syn ? tcp.windowSize : tcp.windowSize * 2 ** heard.shift;
      const timestamp = segmentTimestamp(tcp.bytes, tcp.headerLength);
      if (!Number.isNaN(timestamp)) heard.timestamp = timestamp;
    },
  });
  // The guest announces itself (ARP), so that the gateway knows where 10.0.2.15 is.
  const arp = new Uint8Array(ETHERNET_HEADER_LENGTH + ARP_PACKET_LENGTH);
  emitEthernet({ destination: Uint8Array.of(255, 255, 255, 255, 255, 255), source: GUEST_MAC, etherType: EtherType.ARP }, arp, 0);
  emitArp({ operation: ArpOperation.Request, senderHardwareAddress: GUEST_MAC, senderProtocolAddress: GUEST_IP, targetHardwareAddress: new Uint8Array(6), targetProtocolAddress: GATEWAY_IP }, arp, ETHERNET_HEADER_LENGTH);
  port.send(arp);

  const gw = lan.gateway.mac;
  const timestamp = (value: number, echo: number): TcpOptions => ({ timestamp: { value, echoReply: echo } });
  const syn = new GuestSegment(gw, TcpFlags.SYN, { mss: 65480, windowScale: GUEST_WINDOW_SCALE, sackPermitted: true, ...timestamp(1, 0) });
  const request = new GuestSegment(gw, TcpFlags.ACK | TcpFlags.PSH, timestamp(2, 1), Uint8Array.of(0x71));
  const fin = new GuestSegment(gw, TcpFlags.ACK | TcpFlags.FIN, timestamp(3, 1));
  const lastAck = new GuestSegment(gw, TcpFlags.ACK, timestamp(4, 1));
  // As a TAP with offloads hands them: the TCP checksum left to the receiver of the frame.
  const offload = { ...newFrameOffload(), flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: TCP_AT, csumOffset: 16 };

  const connect = async (guestPort: number): Promise<void> => {
    const iss = (guestPort * 7919) >>> 0;
    heard.synAckSeq = heard.finSeq = -1;
    port.send(syn.aim(guestPort, iss, 0, 0), offload);
    await endOfBatch();
    if (heard.synAckSeq < 0 || host === undefined) throw new Error(`no SYN-ACK for guest port ${guestPort}`);
    const ours = heard.synAckSeq;
    const stream = host;
    port.send(request.aim(guestPort, iss + 1, ours + 1, heard.timestamp), offload);
    await endOfBatch();
    stream.answer(1);
    await endOfBatch();
    port.send(fin.aim(guestPort, iss + 2, ours + 2, heard.timestamp), offload);
    await endOfBatch();
    stream.events.onHostEnd();
    await endOfBatch();
    if (heard.finSeq < 0) throw new Error(`no FIN for guest port ${guestPort}`);
    port.send(lastAck.aim(guestPort, iss + 3, heard.finSeq + 1, heard.timestamp), offload);
    stream.events.onHostClose();
    await endOfBatch();
    if (stream.written !== 1) throw new Error(`the host got ${stream.written} bytes, not 1`);
  };

  /** Opens one guest→host stream; returns what sends it a batch and checks that the batch was acknowledged whole. */
  const openStream = async (): Promise<() => Promise<void>> => {
    const iss = 1000;
    port.send(syn.aim(1, iss, 0, 0), offload);
    await endOfBatch();
    if (heard.synAckSeq < 0) throw new Error('no SYN-ACK for the stream');
    const ack = heard.synAckSeq + 1;
    // One byte completes the handshake; the ACK of it opens the scaled window.
    port.send(request.aim(1, iss + 1, ack, heard.timestamp), offload);
    await endOfBatch();
    const segments = Array.from({ length: bulk.frames }, () => new GuestSegment(gw, TcpFlags.ACK | TcpFlags.PSH, timestamp(5, 1), new Uint8Array(bulk.size)));
    const batchBytes = bulk.frames * bulk.size;
    let seq = (iss + 2) >>> 0;
    return async () => {
      if (heard.window < batchBytes) throw new Error(`a window of ${heard.window} bytes, not room for a batch of ${batchBytes}`);
      for (const segment of segments) {
        port.send(segment.aim(1, seq, ack, heard.timestamp), offload);
        seq = (seq + bulk.size) >>> 0;
      }
      await endOfBatch();
      if (heard.ack !== seq) throw new Error(`a batch acknowledged up to ${heard.ack}, not ${seq}`);
    };
  };

  const perUnit: number[] = [];
  const unit = values.bulk ? 'batch' : 'connection';
  const units = values.bulk ? bulk.batches : connections;
  try {
    const streamBatch = values.bulk ? await openStream() : undefined;
    for (let round = 0; round < rounds; round++) {
      const cpu = process.cpuUsage();
      const start = performance.now();
      if (streamBatch) for (let i = 0; i < units; i++) await streamBatch();
      else for (let i = 0; i < units; i++) await connect(10000 + ((round * units + i) % GUEST_PORTS));
      const wallUs = ((performance.now() - start) * 1000) / units;
      const used = process.cpuUsage(cpu);
      if (!values.bulk && lan.tcp.flowCount !== 0) throw new Error(`${lan.tcp.flowCount} flows left after round ${round + 1}`);
      console.log(`round ${round + 1}: ${wallUs.toFixed(2)} µs per ${unit} (CPU ${((used.user + used.system) / units).toFixed(2)} µs)`);
      perUnit.push(wallUs);
      await new Promise((resolve) => setImmediate(resolve)); // a loop turn between rounds, as the GC would like
    }
  } catch (err) {
    console.error(`js-path: ${(err as Error).message}`);
    return 1;
  } finally {
    lan.close();
  }
  const what = values.bulk ? `a guest→host stream's batch of ${bulk.frames} × ${bulk.size} bytes` : 'a short guest→host connection';
  console.log(`JS path of ${what}: ${median(perUnit.slice(2)).toFixed(2)} µs (median of rounds 3–${rounds})`);
  return 0;
}

process.exitCode = await main();
