/**
 * Debian's Chromium, headless, driven by playwright-core, running inside a
 * lab namespace (through a small nsenter wrapper) so it reaches the daemon's
 * 127.0.0.1 and nothing else. No browser is downloaded: playwright-core
 * only speaks the DevTools protocol to /usr/bin/chromium.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Lab } from './lab.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Flags that keep Chromium quiet: no sandbox (root in a test), no GPU, no background traffic. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const chromiumAvailable = (): boolean => existsSync(CHROMIUM);

/** A fresh browser profile in `netns`; close it before the lab's cleanup. */
export async function launchInNetns(lab: Lab, netns: string): Promise<BrowserContext> {
  const dir = lab.tempDir('chromium');
  const wrapper = join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=/var/run/netns/${netns} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: wrapper,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1000 },
    acceptDownloads: true,
    timeout: 60_000,
  });
}
