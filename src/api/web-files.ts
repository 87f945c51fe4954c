/**
 * The dashboard's files (src/web: plain HTML, CSS and JS, no build step),
 * served from a fixed list so no path can reach anything else. Everything
 * is local: the Content-Security-Policy allows this origin only.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

/** src/web from dist/src/api (compiled) — the files are not compiled. */
export const WEB_DIR = fileURLToPath(new URL('../../../src/web/', import.meta.url));

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
/** The sign-in page is shown before the cookie exists, so it carries its own style. */
const SIGNIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'";

const FILES: Record<string, { file: string; type: string; csp?: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/signin.html': { file: 'signin.html', type: 'text/html; charset=utf-8', csp: SIGNIN_CSP },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/topology.js': { file: 'topology.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/** Send the dashboard file at `path` if there is one; false otherwise. */
export function serveWebFile(path: string, res: ServerResponse, status = 200): boolean {
  const entry = FILES[path];
  if (!entry) return false;
  const file = WEB_DIR + entry.file;
  if (!existsSync(file)) return false;
  const body = readFileSync(file);
  res.writeHead(status, {
    'content-type': entry.type,
    'content-length': body.length,
    'cache-control': 'no-store',
    'content-security-policy': entry.csp ?? CSP,
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
  return true;
}
