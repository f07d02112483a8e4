// End-to-end harness: builds and starts a real `articula serve --demo` on a free port with a fresh
// data directory, and drives the Debian Chromium (/usr/bin/chromium) through playwright-core.
// No browser is ever downloaded. Every wait waits on a condition, never on a fixed sleep.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const webDir = path.resolve(here, '../..');
export const repoRoot = path.resolve(webDir, '..');
/** Where `screenshot()` writes: an ignored folder, so a test run leaves the work tree clean.
 * `make screenshots` points E2E_SCREENSHOTS at docs/screenshots to refresh the documented ones. */
export const screenshotDir = process.env.E2E_SCREENSHOTS
  ? path.resolve(process.env.E2E_SCREENSHOTS)
  : path.join(webDir, 'test-results', 'screenshots');
export const PASSWORD = 'demo-password-e2e';
/** Generous: two browsers, a debug server and the test runner share two cores. */
export const TIMEOUT = 20_000;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--ignore-certificate-errors',
  // WebGL for the 3D previews: no GPU here, so ANGLE on SwiftShader (software), explicitly.
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  // Voice notes: a fake microphone (a beep), no permission prompt.
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
];

let built = false;

/** `cargo build --bin articula` once per run (ARTICULA_BIN skips it). Cargo may wait for the lock. */
export function serverBinary() {
  if (process.env.ARTICULA_BIN) return process.env.ARTICULA_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache', 'articula', 'target');
  if (!built) {
    const r = spawnSync('cargo', ['build', '--bin', 'articula'], {
      cwd: repoRoot,
      env: { ...process.env, CARGO_TARGET_DIR: target },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.status !== 0) throw new Error('cargo build --bin articula failed');
    built = true;
  }
  return path.join(target, 'debug', 'articula');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function healthy(url) {
  return new Promise((resolve) => {
    const req = https.get(`${url}/healthz`, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Starts the demo server; resolves once /healthz answers. `env` adds variables (e.g.
 * ARTICULA_TRANSCRIPTION_URL). */
export async function startServer(env = {}) {
  const bin = serverBinary();
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'articula-e2e-'));
  let log = '';
  const child = spawn(bin, ['serve', '--demo'], {
    cwd: repoRoot, // debug builds read web/dist from here
    env: {
      // The server refuses unknown ARTICULA_* settings (e.g. the Makefile's test variables):
      // it gets exactly the ones below.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ARTICULA_'))),
      ARTICULA_BIND: `127.0.0.1:${port}`,
      ARTICULA_DATA_DIR: dataDir,
      ARTICULA_DEMO_PASSWORD: PASSWORD,
      ARTICULA_ARGON2_MEMORY_KIB: '64',
      ARTICULA_ARGON2_ITERATIONS: '1',
      ARTICULA_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const url = `https://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}):\n${log}`);
    if (await healthy(url)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become healthy:\n${log}`);
    }
    // Polling a condition (the health check), not sleeping in place of one.
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    dataDir,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** A fresh browser context (its own cookie jar: one person on one device). */
export async function newPage(browser, baseURL, viewport = DESKTOP) {
  const context = await browser.newContext({
    baseURL,
    viewport,
    ignoreHTTPSErrors: true,
    deviceScaleFactor: 1,
    isMobile: viewport.width < 500,
    hasTouch: viewport.width < 500,
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // CSP violations and uncaught errors show up here: the app must produce none.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return { context, page, problems };
}

export const PORTAL_OF = {
  'doctor@demo.test': 'clinic',
  'doctor2@demo.test': 'clinic',
  'admin@demo.test': 'clinic',
  'owner@demo.test': 'clinic',
  'auditor@demo.test': 'clinic',
  'tech@demo.test': 'lab',
  'labadmin@demo.test': 'lab',
  'support@demo.test': 'clinic',
};

/** Signs in through the sign-in page, as a person would, and waits for the app shell. */
export async function signIn(page, email) {
  const portal = PORTAL_OF[email];
  await page.goto(`/${portal}/sign-in`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).first().waitFor();
}

/** Opens a demo case from the case list by its label. */
export async function openCase(page, label) {
  await page.goto('/cases');
  await page.getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: label }).waitFor();
  await waitLive(page);
}

/** Waits until the socket is authenticated (the header says "Live"). */
export async function waitLive(page) {
  await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor();
}

/** Saves <screenshotDir>/<name>.png (the viewport, scrolled to the top or to `show`). */
export async function screenshot(page, name, show) {
  mkdirSync(screenshotDir, { recursive: true });
  if (show) {
    await show.scrollIntoViewIfNeeded();
  } else {
    await page.evaluate(() => {
      window.scrollTo(0, 0);
      document.querySelector('main')?.scrollTo(0, 0);
    });
  }
  // Let the caret blink and focus rings not matter: no animation, the caret hidden.
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: false, animations: 'disabled', caret: 'hide' });
}

/** One server and one browser for a test file, torn down even when a test fails. */
export async function setup({ env } = {}) {
  const server = await startServer(env);
  const browser = await launchBrowser();
  const pages = [];
  return {
    server,
    browser,
    async page(viewport) {
      const p = await newPage(browser, server.url, viewport);
      pages.push(p);
      return p;
    },
    /** Fails when any page logged an error (a CSP violation, an exception). */
    assertNoProblems() {
      const all = pages.flatMap((p) => p.problems);
      if (all.length) throw new Error(`browser problems:\n${all.join('\n')}`);
    },
    async close() {
      // E2E_DEBUG=dir keeps a picture of every page as it was at the end (to see a failure).
      if (process.env.E2E_DEBUG) {
        mkdirSync(process.env.E2E_DEBUG, { recursive: true });
        let i = 0;
        for (const p of pages) {
          await p.page.screenshot({ path: path.join(process.env.E2E_DEBUG, `page-${i++}.png`) }).catch(() => {});
        }
      }
      await browser.close().catch(() => {});
      await server.stop();
    },
  };
}

/** A valid binary STL of about `triangles` triangles (80-byte header, u32 LE count, 50 bytes per
 * triangle): a rounded, crown-like closed surface, Z up, in millimetres, with real normals. */
export function makeStl(triangles = 120_000) {
  const seg = Math.max(8, Math.round(Math.sqrt(triangles / 1.5 / 2)));
  const rings = Math.max(4, Math.round(triangles / 2 / (seg * 1.5)));
  const segments = Math.round(seg * 1.5);
  const point = (i, j) => {
    const theta = (Math.PI * i) / rings; // 0 (top) … π (bottom)
    const phi = (2 * Math.PI * j) / segments;
    const s = Math.sin(theta);
    const r = 5 * (1 + 0.1 * Math.sin(4 * phi) * s * s + 0.06 * Math.cos(3 * theta));
    return [r * s * Math.cos(phi) * 1.15, r * s * Math.sin(phi), r * Math.cos(theta) * 0.85];
  };
  const n = rings * segments * 2;
  const buf = Buffer.alloc(84 + 50 * n);
  buf.write('Articula end-to-end test crown (binary STL)', 0, 'ascii');
  buf.writeUInt32LE(n, 80);
  let at = 84;
  const tri = (a, b, c) => {
    const u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    const v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    const nx = u[1] * v[2] - u[2] * v[1];
    const ny = u[2] * v[0] - u[0] * v[2];
    const nz = u[0] * v[1] - u[1] * v[0];
    const len = Math.hypot(nx, ny, nz) || 1;
    for (const x of [nx / len, ny / len, nz / len, ...a, ...b, ...c]) {
      buf.writeFloatLE(x, at);
      at += 4;
    }
    at += 2; // attribute byte count
  };
  for (let i = 0; i < rings; i++) {
    for (let j = 0; j < segments; j++) {
      const p00 = point(i, j);
      const p01 = point(i, j + 1);
      const p10 = point(i + 1, j);
      const p11 = point(i + 1, j + 1);
      tri(p00, p10, p11);
      tri(p00, p11, p01);
    }
  }
  return buf;
}

/** Limits the page's upload speed (Chromium's network emulation), so progress can be watched. */
export async function throttleUpload(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
  return cdp;
}

/** A small valid one-page PDF saying `text`. */
export function makePdf(text) {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    null, // the content stream, below
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  const stream = `BT /F1 24 Tf 72 760 Td (${text.replace(/[()\\]/g, '')}) Tj ET`;
  objects[3] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  let out = '%PDF-1.4\n';
  const offsets = [];
  objects.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

/** A valid PNG (RGB, `size`×`size`): shade tabs, light to dark, like a shade photo. */
export function makePng(size = 96) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const tab = Math.floor((x / size) * 4);
      const o = y * (size * 3 + 1) + 1 + x * 3;
      raw[o] = 240 - tab * 18;
      raw[o + 1] = 225 - tab * 20;
      raw[o + 2] = 190 - tab * 25;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
