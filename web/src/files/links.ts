// Signed download links (`POST /files/{id}/link`): they live 5 minutes and work only for this user
// in this session; the download request is authenticated by the cookie as well. Links are kept in
// memory for a little while so that a preview shown twice asks once; nothing is stored.

import * as api from '../api';
import { refresh } from '../session';

interface Cached {
  url: string;
  expiresAt: number;
}

/** Reuse a link only while it has at least this long to live (a big scan takes a while). */
const MIN_LIFE_MS = 90_000;
const cache = new Map<string, Cached>();

/** A same-origin path for the link. The server names its public URL; the page only ever talks to
 * its own origin (CSP `connect-src`/`img-src`/`media-src 'self'`), which serves the same API. */
function sameOrigin(url: string): string {
  const u = new URL(url, location.href);
  return u.pathname + u.search;
}

/** A link to download the file (`inline` shows images, PDFs and audio in the page instead). */
export async function fileLink(fileId: string, opts: { inline?: boolean; fresh?: boolean } = {}): Promise<string> {
  let c = cache.get(fileId);
  if (!c || opts.fresh || c.expiresAt - Date.now() < MIN_LIFE_MS) {
    const l = await api.fileLink(fileId);
    c = { url: sameOrigin(l.url), expiresAt: l.expires_at };
    cache.set(fileId, c);
  }
  return opts.inline ? `${c.url}&inline=1` : c.url;
}

export function forgetLinks() {
  cache.clear();
}

/** Fetches a file's bytes through a fresh signed link, reporting progress. One retry covers the
 * two ordinary failures: an access cookie that lapsed (401: refresh) and a link that expired. */
export async function fetchFile(fileId: string, onProgress?: (received: number, total: number) => void, signal?: AbortSignal): Promise<ArrayBuffer> {
  for (let attempt = 0; ; attempt++) {
    const url = await fileLink(fileId, { fresh: attempt > 0 });
    const startedAt = Date.now();
    const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store', signal });
    if (res.ok) return readAll(res, onProgress);
    if (attempt === 0 && (res.status === 401 || res.status === 403 || res.status === 410)) {
      if (res.status === 401 && !(await refresh(startedAt).catch(() => false))) throw new Error('Your session has ended.');
      continue;
    }
    let message = `The download failed (${res.status}).`;
    try {
      const j = (await res.json()) as { message?: string };
      if (j.message) message = j.message;
    } catch {
      /* not JSON */
    }
    throw new Error(message);
  }
}

async function readAll(res: Response, onProgress?: (received: number, total: number) => void): Promise<ArrayBuffer> {
  const total = Number(res.headers.get('Content-Length') ?? 0);
  if (!res.body || !onProgress) return res.arrayBuffer();
  const reader = res.body.getReader();
  // Filled in place when the length is known (no second copy of a big scan); pieces otherwise.
  let buf: Uint8Array<ArrayBuffer> | null = total > 0 ? new Uint8Array(total) : null;
  const parts: Uint8Array[] = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (buf && received + value.length > buf.length) {
      parts.push(buf.subarray(0, received)); // longer than announced: fall back to pieces
      buf = null;
    }
    if (buf) buf.set(value, received);
    else parts.push(value);
    received += value.length;
    onProgress(received, total);
  }
  if (buf) return received === buf.length ? buf.buffer : buf.buffer.slice(0, received);
  const out = new Uint8Array(received);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out.buffer;
}

/** Starts a download of the file (the server answers `Content-Disposition: attachment`). */
export async function download(fileId: string, name: string) {
  const url = await fileLink(fileId);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
}
