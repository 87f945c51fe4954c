/** What a test does inside a guest namespace: ping, capture. */
import assert from 'node:assert/strict';
import { must, run, sleep, type Lab } from './lab.js';

/** `ping -c COUNT` must succeed (one retry for the first ARP exchange). */
export async function ping(lab: Lab, netns: string, address: string, count = 2): Promise<void> {
  const result = await lab.exec(netns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', address]);
  if (result.code === 0) return;
  const retry = await lab.exec(netns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', address]);
  assert.equal(retry.code, 0, `ping ${address} from ${netns} failed:\n${result.stdout}${retry.stdout}`);
}

export async function pingFails(lab: Lab, netns: string, address: string): Promise<void> {
  const result = await lab.exec(netns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', address]);
  assert.notEqual(result.code, 0, `ping ${address} from ${netns} should fail:\n${result.stdout}`);
}

export interface Capture {
  /** Stop capturing; the frames as tcpdump's one-liners with MACs (`-e`). */
  stop(): Promise<string>;
  /** Stop capturing; how many frames matched. */
  count(): Promise<number>;
}

/** tcpdump on `ifname` inside `netns`, into `file`, with an optional filter. */
export function capture(lab: Lab, netns: string, ifname: string, file: string, filter?: string): Capture {
  const child = lab.spawn(netns, 'tcpdump', ['-i', ifname, '-U', '-n', '-w', file, ...(filter ? [filter] : [])]);
  const stop = async (): Promise<void> => {
    await sleep(300);
    child.kill('SIGINT');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    lab.forget(child);
  };
  return {
    async stop() {
      await stop();
      return must('tcpdump', ['-r', file, '-n', '-e']);
    },
    async count() {
      await stop();
      const out = await run('tcpdump', ['-r', file, '-n']);
      return out.stdout.split('\n').filter(Boolean).length;
    },
  };
}
