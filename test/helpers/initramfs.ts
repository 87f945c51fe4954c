/**
 * A tiny initramfs for a QEMU test guest, built at test time from what the
 * machine has: the static busybox, the Debian kernel's virtio-net modules
 * (with their dependencies, in load order from `modprobe --show-depends`),
 * and an /init that brings eth0 up with udhcpc, downloads a file over HTTP
 * through the NAT and prints its sha256 on the serial console, then serves
 * HTTP on port 8080 for a port-forward check. Console lines the test waits
 * for start with `VNET-`.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { must } from './lab.js';

export const BUSYBOX = '/bin/busybox';
/** The HTTP port the guest serves on. */
export const GUEST_HTTP_PORT = 8080;
export const GUEST_PAGE = 'hello from the QEMU guest\n';

/** The newest installed kernel image and its version, or null if none. */
export function findKernel(): { path: string; version: string } | null {
  const images = existsSync('/boot') ? readdirSync('/boot').filter((f) => /^vmlinuz-/.test(f)).sort() : [];
  const image = images.at(-1);
  if (!image) return null;
  const version = image.slice('vmlinuz-'.length);
  return existsSync(`/lib/modules/${version}`) ? { path: join('/boot', image), version } : null;
}

/** Module files to load for virtio-net over PCI, dependencies first. */
async function moduleFiles(version: string): Promise<string[]> {
  const files: string[] = [];
  for (const module of ['virtio_pci', 'virtio_net']) {
    const out = await must('modprobe', ['-S', version, '--show-depends', module]);
    for (const line of out.split('\n')) {
      const m = /^insmod (\S+)/.exec(line.trim());
      if (m && !files.includes(m[1]!)) files.push(m[1]!);
    }
  }
  return files;
}

const UDHCPC_SCRIPT = `#!/bin/busybox sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}"
    echo "ip=$ip router=$router dns=$dns" > /tmp/lease
    ;;
esac
exit 0
`;

function initScript(modules: string[], downloadUrl: string): string {
  return `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /www /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
${modules.map((m) => `insmod /modules/${basename(m)}`).join('\n')}
echo "VNET-MODULES $(ls /sys/class/net | tr '\\n' ' ')"
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -f -t 15 -T 2 -s /udhcpc.sh
echo "VNET-LEASE $(cat /tmp/lease)"
# (busybox 1.35 wget crashes on -T; the test bounds the wait instead)
if wget -q -O /tmp/blob ${downloadUrl}; then
  echo "VNET-SHA256 $(sha256sum /tmp/blob | cut -d' ' -f1)"
else
  echo "VNET-WGET-FAILED"
fi
# Longer than the 1500-byte link: fragments to the NAT gateway, whose reply comes back in fragments.
if ping -c 1 -W 10 -s 4000 10.0.2.2 > /dev/null; then echo "VNET-PING-4000 ok"; else echo "VNET-PING-4000 failed"; fi
printf '${GUEST_PAGE.replace(/\n/g, '\\n')}' > /www/index.html
httpd -p ${GUEST_HTTP_PORT} -h /www
echo "VNET-READY"
while true; do sleep 3600; done
`;
}

/** Build `initramfs.cpio` in `dir` for kernel `version`; the guest downloads `downloadUrl`. */
export async function buildInitramfs(dir: string, version: string, downloadUrl: string): Promise<string> {
  const root = join(dir, 'root');
  for (const sub of ['bin', 'modules', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(root, sub), { recursive: true });
  copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  const modules = await moduleFiles(version);
  for (const m of modules) copyFileSync(m, join(root, 'modules', basename(m)));
  writeFileSync(join(root, 'init'), initScript(modules, downloadUrl), { mode: 0o755 });
  writeFileSync(join(root, 'udhcpc.sh'), UDHCPC_SCRIPT, { mode: 0o755 });
  const image = join(dir, 'initramfs.cpio');
  await must('sh', ['-c', `cd '${root}' && find . | cpio -o -H newc --quiet > '${image}'`]);
  return image;
}
