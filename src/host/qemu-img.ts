/**
 * `qemu-img`: create disk images, ask their format and size, check them.
 * Every call is bounded in time; a failure becomes a VnetError carrying
 * qemu-img's own first line of complaint.
 */
import { execFile } from 'node:child_process';
import { VnetError } from '../errors.js';

const QEMU_IMG = 'qemu-img';
/** Creating or checking a big image is I/O bound but quick; anything longer is stuck. */
const TIMEOUT_MS = 120_000;

export interface ImgResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<ImgResult> {
  return new Promise((resolve, reject) => {
    execFile(QEMU_IMG, args, { timeout: TIMEOUT_MS, encoding: 'utf8', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new VnetError('VNET_ERR_HOST', `${QEMU_IMG} is not installed (Debian: apt-get install qemu-utils)`, { cause: err }));
        return;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const firstLine = (r: ImgResult): string => (r.stderr.trim() || r.stdout.trim()).split('\n')[0] ?? '';

/** The lowercase format name qemu uses for a VirtualBox one. */
export const qemuFormat = (format: string): string => format.toLowerCase();

/** `qemu-img create -f FORMAT PATH SIZEM`: a new (sparse/dynamic) image. */
export async function createImage(path: string, format: string, sizeMb: number): Promise<void> {
  const result = await run(['create', '-q', '-f', qemuFormat(format), path, `${sizeMb}M`]);
  if (result.code !== 0) throw new VnetError('VNET_ERR_HOST', `qemu-img create ${path}: ${firstLine(result)}`);
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
}

/** `qemu-img info`: the image's format and virtual size in bytes. */
export async function imageInfo(path: string): Promise<ImageInfo> {
  const result = await run(['info', '--output=json', path]);
  if (result.code !== 0) throw new VnetError('VNET_ERR_INVALID_VALUE', `${path}: ${firstLine(result)}`);
  const info = JSON.parse(result.stdout) as { format: string; 'virtual-size': number };
  return { format: info.format, virtualSize: info['virtual-size'] };
}

/** `qemu-img check`: exit 0 means the image is consistent. */
export async function checkImage(path: string, format?: string): Promise<ImgResult> {
  return run(['check', ...(format ? ['-f', qemuFormat(format)] : []), path]);
}
