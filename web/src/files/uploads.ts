// Uploads through tus (tus-js-client against the server's tus 1.0 endpoint): progress, pause and
// resume, and resume after a reload of the page.
//
// Resuming after a reload needs the upload's URL to outlive the page. tus-js-client keeps it in
// localStorage by default; Articula keeps nothing about cases on the device, so the URL goes to
// sessionStorage instead (it survives a reload in the same tab, dies with the tab, and sign-out
// clears it with everything else), and only what resuming needs is kept: the upload's URL, its
// size, its case and kind, when it started, under a fingerprint that is a SHA-256 of who uploads
// what where (user, case, file name, size, modification time). No file name, no case label.
// The browser cannot reopen a file by itself after a reload: the user picks the same file again
// and the upload continues from the offset the server reports (HEAD), not from zero.

import { signal } from '@preact/signals';
import * as tus from 'tus-js-client';
import * as api from '../api';
import { KIND_ACCEPTS, KIND_LABEL, declaredType, formatSize, type FileKind } from '../domain';
import { me, onSignOut, refresh } from '../session';

/** 8 MiB per PATCH: a lost connection re-sends at most this much, progress moves smoothly, and a
 * request stays well within any proxy's timeouts even on a slow uplink. */
export const CHUNK_SIZE = 8 * 1024 * 1024;
const RETRY_DELAYS = [0, 1_000, 3_000, 5_000, 10_000, 20_000, 30_000];
const STORAGE_PREFIX = 'articula.upload::';

export type UploadState = 'uploading' | 'paused' | 'checking' | 'done' | 'failed';

export interface UploadItem {
  key: string;
  caseId: string;
  name: string;
  size: number;
  kind: FileKind;
  /** Bytes the server has (or is receiving). */
  sent: number;
  state: UploadState;
  error: string | null;
  /** The offset the server reported when this upload resumed an earlier one. */
  resumedAt: number | null;
  fileId: string | null;
}

// tus-js-client probes localStorage when it loads (it writes a `tusSupport` key and removes it
// again). Two tabs loading at once, as after a sign-out reloads every tab, can interleave the
// probe so that the key stays behind. Nothing of a case is in it, but the rule is that this
// origin keeps only its UI preference on the device, so the key goes as soon as the probe ran
// (module evaluation order: tus-js-client's module has run before this line).
try {
  if (localStorage.getItem('tusSupport') === 'null') localStorage.removeItem('tusSupport');
} catch {
  /* no storage: nothing to remove */
}

/** Every upload of this page, newest last (in memory only). */
export const uploads = signal<UploadItem[]>([]);

const live = new Map<string, tus.Upload>();

// ---- the URL storage: sessionStorage, minimal ----

interface StoredUpload {
  uploadUrl: string;
  size: number | null;
  creationTime: string;
  caseId: string;
  kind: FileKind | null;
}

export interface Interrupted extends StoredUpload {
  storageKey: string;
}

type PreviousUpload = tus.PreviousUpload & { urlStorageKey: string };

class SessionUrlStorage implements tus.UrlStorage {
  findAllUploads(): Promise<PreviousUpload[]> {
    return Promise.resolve(entries(STORAGE_PREFIX).map(toPrevious));
  }

  findUploadsByFingerprint(fingerprint: string): Promise<PreviousUpload[]> {
    return Promise.resolve(entries(`${STORAGE_PREFIX}${fingerprint}::`).map(toPrevious));
  }

  removeUpload(urlStorageKey: string): Promise<void> {
    try {
      sessionStorage.removeItem(urlStorageKey);
    } catch {
      /* storage unavailable: nothing to remove */
    }
    return Promise.resolve();
  }

  addUpload(fingerprint: string, upload: tus.PreviousUpload): Promise<string> {
    const key = `${STORAGE_PREFIX}${fingerprint}::${crypto.randomUUID()}`;
    const meta = upload.metadata ?? {};
    const stored: StoredUpload = {
      uploadUrl: upload.uploadUrl ?? '',
      size: upload.size,
      creationTime: upload.creationTime,
      caseId: meta.case_id ?? '',
      kind: (meta.kind as FileKind | undefined) ?? null,
    };
    try {
      sessionStorage.setItem(key, JSON.stringify(stored));
    } catch {
      /* full or unavailable: the upload works, it just cannot resume after a reload */
    }
    return Promise.resolve(key);
  }
}

function entries(prefix: string): Interrupted[] {
  const out: Interrupted[] = [];
  try {
    for (let i = 0; i < sessionStorage.length; i++) {
      const key = sessionStorage.key(i);
      if (!key?.startsWith(prefix)) continue;
      try {
        const v = JSON.parse(sessionStorage.getItem(key) ?? '') as StoredUpload;
        if (v.uploadUrl) out.push({ ...v, storageKey: key });
      } catch {
        /* a malformed entry never blocks an upload */
      }
    }
  } catch {
    /* storage unavailable */
  }
  return out.sort((a, b) => b.creationTime.localeCompare(a.creationTime));
}

function toPrevious(e: Interrupted): PreviousUpload {
  return {
    size: e.size,
    metadata: {},
    creationTime: e.creationTime,
    uploadUrl: e.uploadUrl,
    parallelUploadUrls: null,
    urlStorageKey: e.storageKey,
  };
}

const urlStorage = new SessionUrlStorage();

/** A hash, so that the storage key names no file. Bound to the user and the case: after a
 * reload the same file resumes only for the same person in the same case. */
async function fingerprint(file: File | Blob, options: tus.UploadOptions): Promise<string> {
  const f = file as File;
  const parts = [me.value?.id ?? '', options.metadata?.case_id ?? '', f.name ?? '', f.type, f.size, f.lastModified ?? 0];
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(parts.join('\n')));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Interrupted uploads of a case this tab remembers (after a reload, before the file is picked again). */
export function interrupted(caseId: string): Interrupted[] {
  const running = new Set([...live.values()].map((u) => u.url));
  return entries(STORAGE_PREFIX).filter((e) => e.caseId === caseId && !running.has(e.uploadUrl));
}

/** How many bytes the server has of an interrupted upload; null when it is gone (expired,
 * refused, completed or terminated): then its entry is dropped; undefined when unknown now. */
export async function receivedOf(e: Interrupted): Promise<number | null | undefined> {
  const res = await fetch(e.uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' }, credentials: 'same-origin', cache: 'no-store' });
  const offset = Number(res.headers.get('Upload-Offset'));
  const length = Number(res.headers.get('Upload-Length'));
  if (res.ok && Number.isFinite(offset) && offset < length) return offset;
  if (res.ok || res.status === 404 || res.status === 410 || res.status === 415 || res.status === 403) {
    await urlStorage.removeUpload(e.storageKey);
    return null;
  }
  return undefined; // e.g. the access cookie lapsed: the resume itself will refresh it
}

/** Gives up an interrupted upload: the server deletes what it received. */
export async function discardInterrupted(e: Interrupted) {
  await urlStorage.removeUpload(e.storageKey);
  try {
    await tus.Upload.terminate(e.uploadUrl, { headers: csrfHeaders('DELETE') });
  } catch {
    /* it expires on the server anyway */
  }
}

// ---- requests: CSRF, and a refresh when the access cookie lapses during a long upload ----

function csrfHeaders(method: string): Record<string, string> {
  const t = method === 'HEAD' || method === 'GET' ? null : api.csrfToken();
  return t ? { 'X-CSRF-Token': t } : {};
}

const startedAt = new WeakMap<object, number>();
let reauth: Promise<boolean> | null = null;

async function beforeRequest(req: tus.HttpRequest) {
  if (reauth) await reauth;
  startedAt.set(req.getUnderlyingObject() as object, Date.now());
  for (const [k, v] of Object.entries(csrfHeaders(req.getMethod()))) req.setHeader(k, v);
}

function shouldRetry(err: tus.DetailedError, attempt: number): boolean {
  const res = err.originalResponse;
  const status = res?.getStatus() ?? 0;
  if (status === 401) {
    if (attempt >= 2) return false;
    const since = (err.originalRequest && startedAt.get(err.originalRequest.getUnderlyingObject() as object)) ?? 0;
    reauth ??= refresh(since)
      .catch(() => false)
      .finally(() => (reauth = null));
    return true;
  }
  // tus-js-client's own rule: not for a refusal (4xx), except a conflict on the offset (409) and
  // a lock still held by the request a reload interrupted (423); and only while online.
  return navigator.onLine && (status < 400 || status >= 500 || status === 409 || status === 423);
}

// ---- errors people can act on ----

interface ServerError {
  error?: string;
  message?: string;
}

function explain(err: Error, kind: FileKind): string {
  const res = (err as tus.DetailedError).originalResponse;
  if (!res) return navigator.onLine ? 'The connection to the server was lost. Resume to continue.' : 'You are offline. Resume when the connection is back.';
  let body: ServerError = {};
  try {
    body = JSON.parse(res.getBody() || '{}') as ServerError;
  } catch {
    /* not JSON */
  }
  const said = body.message ? ` (${body.message})` : '';
  switch (body.error) {
    case 'invalid_file_type':
      return `Not accepted: a ${KIND_LABEL[kind].toLowerCase()} must be ${KIND_ACCEPTS[kind]}, and the server judges by the content${said}.`;
    case 'malware_detected':
      return `Refused: the malware scan flagged this file${said}. It was not stored.`;
    case 'file_too_large':
    case 'payload_too_large':
      return `Too large${said}.`;
    case 'forbidden':
      return 'Your role may not add files to this case.';
    case 'not_found':
      return 'This case is gone or no longer yours, or the upload expired.';
    case 'unavailable':
      return `The server cannot check files right now${said}. Try again later.`;
    default:
      return body.message ?? `The upload failed (HTTP ${res.getStatus()}).`;
  }
}

// ---- the manager ----

function patch(key: string, change: Partial<UploadItem>) {
  uploads.value = uploads.value.map((u) => (u.key === key ? { ...u, ...change } : u));
}

export interface StartOptions {
  caseId: string;
  kind: FileKind;
  /** Keep the upload's URL for a resume after a reload (not for recordings: they are gone then). */
  resumable?: boolean;
}

/** Uploads a file to a case; resumes an earlier, interrupted upload of the same file if this tab
 * remembers one. Returns the upload's key in `uploads`. */
export async function startUpload(file: File, { caseId, kind, resumable = true }: StartOptions): Promise<string> {
  const key = crypto.randomUUID();
  const item: UploadItem = {
    key,
    caseId,
    name: file.name,
    size: file.size,
    kind,
    sent: 0,
    state: 'uploading',
    error: null,
    resumedAt: null,
    fileId: null,
  };
  uploads.value = [...uploads.value, item];
  if (file.size === 0) {
    patch(key, { state: 'failed', error: 'The file is empty.' });
    return key;
  }
  const upload = new tus.Upload(file, {
    endpoint: api.UPLOAD_ENDPOINT,
    chunkSize: CHUNK_SIZE,
    retryDelays: RETRY_DELAYS,
    metadata: { case_id: caseId, filename: file.name, content_type: declaredType(file.name, file.type), kind },
    fingerprint,
    urlStorage,
    storeFingerprintForResuming: resumable,
    removeFingerprintOnSuccess: true,
    onBeforeRequest: beforeRequest,
    onShouldRetry: shouldRetry,
    onAfterResponse: (req, res) => {
      // The offset the server had when this upload resumed (the HEAD before the first PATCH).
      if (req.getMethod() === 'HEAD' && res.getStatus() === 200) {
        const at = Number(res.getHeader('Upload-Offset'));
        if (Number.isFinite(at)) patch(key, { resumedAt: at, sent: at });
      }
    },
    onProgress: (sent, total) => {
      // All bytes sent: the server now checks the content and scans it before answering.
      patch(key, { sent, state: sent >= total ? 'checking' : 'uploading' });
    },
    onSuccess: ({ lastResponse }) => {
      live.delete(key);
      patch(key, { sent: file.size, state: 'done', error: null, fileId: lastResponse.getHeader('Articula-File-Id') ?? null });
    },
    onError: (err) => {
      live.delete(key);
      const res = (err as tus.DetailedError).originalResponse;
      // A refusal is final: forget the stored URL. A network failure can be resumed.
      const refused = !!res && res.getStatus() >= 400 && res.getStatus() < 500 && res.getStatus() !== 409 && res.getStatus() !== 423;
      if (refused && upload.url) void forgetStored(upload.url);
      patch(key, { state: refused ? 'failed' : 'paused', error: explain(err, kind) });
      if (!refused) live.set(key, upload);
    },
  });
  live.set(key, upload);
  if (resumable) {
    try {
      const previous = await upload.findPreviousUploads();
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
    } catch {
      /* storage unavailable: start afresh */
    }
  }
  upload.start();
  return key;
}

async function forgetStored(uploadUrl: string) {
  for (const e of entries(STORAGE_PREFIX)) if (e.uploadUrl === uploadUrl) await urlStorage.removeUpload(e.storageKey);
}

export function pause(key: string) {
  const u = live.get(key);
  if (!u) return;
  void u.abort(false);
  patch(key, { state: 'paused', error: null });
}

export function resume(key: string) {
  const u = live.get(key);
  if (!u) return;
  patch(key, { state: 'uploading', error: null });
  u.start();
}

/** Stops an upload for good: the server deletes what it received. */
export function cancel(key: string) {
  const u = live.get(key);
  live.delete(key);
  if (u) {
    const url = u.url;
    void u.abort(!!url).catch(() => {});
    if (url) void forgetStored(url);
  }
  uploads.value = uploads.value.filter((x) => x.key !== key);
}

export function dismiss(key: string) {
  uploads.value = uploads.value.filter((x) => x.key !== key || (x.state !== 'done' && x.state !== 'failed'));
}

export function describeProgress(u: UploadItem): string {
  const pct = u.size ? Math.floor((u.sent / u.size) * 100) : 0;
  return `${pct}% · ${formatSize(u.sent)} of ${formatSize(u.size)}`;
}

onSignOut(() => {
  for (const u of live.values()) void u.abort(false).catch(() => {});
  live.clear();
  uploads.value = [];
});
