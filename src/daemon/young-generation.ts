/**
 * Keeps V8's young generation from shrinking in the pauses between bursts
 * of traffic.
 *
 * After every scavenge that finds the allocation rate below 1,000 bytes a
 * millisecond, V8 shrinks its young generation and hands the pages of the
 * half it is not using back to the kernel (V8 11's
 * `Heap::ReduceNewSpaceSize`, `kLowAllocationThroughput`; only
 * `--predictable` turns it off). It measures the rate over its last few
 * scavenges, so a pause of a few seconds counts against the burst after
 * it: each of that burst's first scavenges shrinks the young generation
 * again, and the allocations after each one fault its pages back in. A
 * short connection allocates ~11 KB, so that is the first ~1,000
 * connections after every pause. Measured (docs/performance.md, "The
 * young generation after a pause"): 2,000 short connections after 15 s of
 * quiet took 2,100–3,100 page faults against 57–199 right after other
 * traffic; with the rate kept up, 27–32, and the connections after a
 * pause ran faster in 12 of 12 and 8 of 12 paired runs.
 *
 * So, for KEEP_MS after the daemon was last busy, it makes TOP_UP_BYTES of
 * short-lived garbage once a second: V8's rate never reads as low, at the
 * cost of one cheap scavenge a second or so. After KEEP_MS of quiet it
 * stops, and V8 shrinks the heap as it likes.
 */
import { cpuUsage } from 'node:process';

/** Garbage made per tick: above V8's 1 MB/s "low" rate with room to spare. */
export const TOP_UP_BYTES = 1536 * 1024;
/** How long after the daemon was last busy it keeps topping up. */
export const KEEP_MS = 60_000;
const TICK_MS = 1000;
/** CPU time in one tick above which the daemon was busy: 1 % of a core, well above the top-up's own. */
const BUSY_CPU_US = 10_000;
/** Elements of one piece of garbage: an 8 KiB backing store, a young-generation object (not a large one). */
const PIECE_ELEMENTS = 1024;
const PIECE_BYTES = PIECE_ELEMENTS * 8;

export interface YoungGenerationKeeperOptions {
  /** Milliseconds, for KEEP_MS. */
  now?: () => number;
  /** The process's CPU time so far, µs. */
  cpuMicros?: () => number;
  /** Makes `bytes` of garbage. */
  makeGarbage?: (bytes: number) => void;
}

export class YoungGenerationKeeper {
  private readonly now: () => number;
  private readonly cpuMicros: () => number;
  private readonly makeGarbage: (bytes: number) => void;
  private lastCpu: number;
  private lastBusy = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: YoungGenerationKeeperOptions = {}) {
    this.now = options.now ?? Date.now;
    this.cpuMicros = options.cpuMicros ?? processCpuMicros;
    this.makeGarbage = options.makeGarbage ?? makeGarbage;
    this.lastCpu = this.cpuMicros();
  }

  start(): void {
    this.stop();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One second's look: was the daemon busy, and is it still within KEEP_MS of that? True when it topped up. */
  tick(): boolean {
    const cpu = this.cpuMicros();
    const now = this.now();
    if (cpu - this.lastCpu > BUSY_CPU_US) this.lastBusy = now;
    const keep = now - this.lastBusy <= KEEP_MS;
    if (keep) this.makeGarbage(TOP_UP_BYTES);
    this.lastCpu = this.cpuMicros(); // the top-up's own CPU does not count as busy
    return keep;
  }
}

function processCpuMicros(): number {
  const { user, system } = cpuUsage();
  return user + system;
}

/** Where the garbage goes, so that the JIT cannot leave the allocation out. */
let sink: unknown;

function makeGarbage(bytes: number): void {
  for (let made = 0; made < bytes; made += PIECE_BYTES) sink = new Array<number>(PIECE_ELEMENTS).fill(0);
  sink = undefined;
}
