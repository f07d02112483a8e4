// Files in the case room: the lab technician uploads a design (tus) with a visible progress bar,
// the doctor sees it appear live and turns it in 3D; an approval is requested on it and the doctor
// approves it next to its preview; a reload in the middle of an upload resumes it where the server
// got to; refusals are explained; photos, PDFs and attachments in chat.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makePdf, makePng, makeStl, openCase, PHONE, screenshot, setup, signIn, throttleUpload } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';
let env;
let tmp;

before(async () => {
  env = await setup();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'articula-e2e-files-'));
});
after(async () => {
  await env?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Waits until the progress bar of the upload of `name` is above `above` (and below its max, with
 * `moving`), or complete (`done`); returns its value, max and state. */
async function waitProgress(page, name, { above = -1, moving = false, done = false }) {
  const h = await page.waitForFunction(
    ([n, above, moving, done]) => {
      const row = [...document.querySelectorAll('[data-testid=upload]')].find((r) => r.textContent.includes(n));
      const p = row?.querySelector('progress');
      if (!p) return null;
      const ok = done ? row.dataset.state === 'done' && p.value === p.max : p.value > above && (!moving || p.value < p.max);
      return ok ? { value: p.value, max: p.max, state: row.dataset.state } : null;
    },
    [name, above, moving, done],
    { polling: 50 },
  );
  return h.jsonValue();
}

/** Whether the 3D preview's canvas shows a model: enough pixels differ from the background. */
async function waitRendered(page, within) {
  const canvas = within.locator('canvas.mesh-canvas');
  await canvas.waitFor();
  const h = await canvas.evaluateHandle((c) => c);
  const counts = await page.waitForFunction(
    (c) => {
      const gl = c.getContext('webgl2') || c.getContext('webgl');
      if (!gl || gl.isContextLost() || !gl.drawingBufferWidth) return null;
      const w = gl.drawingBufferWidth;
      const hh = gl.drawingBufferHeight;
      const px = new Uint8Array(w * hh * 4);
      gl.readPixels(0, 0, w, hh, gl.RGBA, gl.UNSIGNED_BYTE, px);
      let model = 0;
      const shades = new Set();
      for (let i = 0; i < px.length; i += 4 * 7) {
        const bg = Math.abs(px[i] - 0xee) < 3 && Math.abs(px[i + 1] - 0xf1) < 3 && Math.abs(px[i + 2] - 0xf5) < 3;
        if (!bg) {
          model++;
          shades.add(`${px[i] >> 3},${px[i + 1] >> 3},${px[i + 2] >> 3}`);
        }
      }
      const share = model / (px.length / 4 / 7);
      // A lit model: a real share of the picture, in many shades (not one flat colour).
      return share > 0.05 && shades.size > 20 ? { share, shades: shades.size, w, h: hh } : null;
    },
    h,
    { polling: 100 },
  );
  return counts.jsonValue();
}

test('the technician uploads an STL with a progress bar; the doctor sees it live and turns it in 3D', async () => {
  const { page: tech } = await env.page();
  const { page: doctor } = await env.page(PHONE);
  await signIn(tech, 'tech@demo.test');
  await signIn(doctor, 'doctor@demo.test');
  await openCase(tech, CASE);
  await openCase(doctor, CASE);
  await tech.getByRole('tab', { name: 'Files' }).click();
  await doctor.getByRole('tab', { name: 'Files' }).click();
  await doctor.getByTestId('files').waitFor();

  // A 6 MB binary STL, sent at 1.5 MB/s so the progress can be watched moving.
  const stl = makeStl(120_000);
  await throttleUpload(tech, 1_500_000);
  await tech.getByLabel('Add a file').setInputFiles({ name: 'crown_11_design.stl', mimeType: 'model/stl', buffer: stl });
  // The kind follows the extension and the side: a mesh from the lab is a design.
  assert.equal(await tech.getByLabel('Kind').inputValue(), 'design');
  await tech.getByRole('button', { name: /^Upload 6\.0 MB/ }).click();

  const bar = tech.getByRole('progressbar', { name: 'Upload of crown_11_design.stl' });
  await bar.waitFor();
  const first = await waitProgress(tech, 'crown_11_design.stl', { above: 0, moving: true });
  const later = await waitProgress(tech, 'crown_11_design.stl', { above: first.value, moving: true });
  assert.ok(later.value > first.value, `progress moved: ${first.value} → ${later.value}`);
  await screenshot(tech, 'upload-in-progress-desktop', tech.getByTestId('upload').first());
  const done = await waitProgress(tech, 'crown_11_design.stl', { done: true });
  assert.equal(done.max, stl.length);
  await tech.getByTestId('upload').filter({ hasText: 'Added to the case' }).waitFor();

  // The doctor, on a phone, sees it arrive without reloading, and turns it in 3D.
  const row = doctor.getByTestId('file').filter({ hasText: 'crown_11_design.stl' });
  await row.waitFor();
  await row.getByText('Design', { exact: true }).waitFor();
  await row.getByRole('button', { name: 'Show in 3D' }).click();
  const viewer = row.getByTestId('mesh-viewer');
  await viewer.and(doctor.locator('[data-state=ready]')).waitFor();
  const rendered = await waitRendered(doctor, viewer);
  assert.ok(rendered.share > 0.05, JSON.stringify(rendered));
  await viewer.getByText('120,000 triangles').waitFor();
  // The viewer reacts to a drag (orbit controls re-render the view).
  await viewer.locator('canvas').scrollIntoViewIfNeeded();
  const before = await viewer.locator('canvas').evaluate((c) => c.toDataURL());
  const box = await viewer.locator('canvas').boundingBox();
  await doctor.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await doctor.mouse.down();
  await doctor.mouse.move(box.x + box.width / 2 + 80, box.y + box.height / 2 + 20, { steps: 4 });
  await doctor.mouse.up();
  await doctor.waitForFunction((prev) => document.querySelector('[data-state=ready] canvas')?.toDataURL() !== prev, before);
  await screenshot(doctor, 'files-3d-390', viewer);

  // The same on a wide screen: the list beside the chat, the preview open.
  const { page: wide } = await env.page();
  await signIn(wide, 'doctor@demo.test');
  await openCase(wide, CASE);
  await wide.getByRole('tab', { name: 'Files' }).click();
  const wideRow = wide.getByTestId('file').filter({ hasText: 'crown_11_design.stl' });
  await wideRow.getByRole('button', { name: 'Show in 3D' }).click();
  await waitRendered(wide, wideRow.getByTestId('mesh-viewer'));
  await screenshot(wide, 'files-3d-desktop', wideRow);
  env.assertNoProblems();
});

test('an approval is requested on the design; the doctor sees it in 3D and approves', async () => {
  const { page: tech } = await env.page();
  const { page: doctor } = await env.page(PHONE);
  await signIn(tech, 'tech@demo.test');
  await signIn(doctor, 'doctor@demo.test');
  await openCase(tech, CASE);
  await openCase(doctor, CASE);

  await tech.getByRole('tab', { name: 'Approvals' }).click();
  const form = tech.locator('form.request-approval');
  const sha = await form.locator('option', { hasText: 'crown_11_design.stl' }).getAttribute('value');
  await form.getByLabel('Design file').selectOption(sha);
  await form.getByLabel('Comment (optional)').fill('Contacts light, as asked.');
  await form.getByRole('button', { name: /Request approval/ }).click();
  await tech.locator('.room-head [data-status=awaiting_approval]').waitFor();

  // The doctor: the case waits for them; the approval shows the design in 3D.
  await doctor.locator('.room-head [data-status=awaiting_approval]').waitFor();
  await doctor.getByRole('tab', { name: /Approvals/ }).click();
  const item = doctor.locator('.approval-pending');
  await item.getByText('crown_11_design.stl').waitFor();
  await item.getByText('Contacts light, as asked.').waitFor();
  const viewer = item.getByTestId('mesh-viewer');
  await waitRendered(doctor, viewer);
  await screenshot(doctor, 'approval-design-390', item);
  // The lab sees the same design next to its request.
  await waitRendered(tech, tech.locator('.approval-pending').getByTestId('mesh-viewer'));
  await screenshot(tech, 'approval-design-desktop', tech.locator('.approval-pending'));

  await item.getByRole('button', { name: 'Approve design' }).click();
  await doctor.locator('.room-head [data-status=approved]').waitFor();
  await tech.locator('.room-head [data-status=approved]').waitFor();
  await tech.locator('.approval-approved').getByText(/Approved by Dr\. Ana Ortiz/).waitFor();
  env.assertNoProblems();
});

test('a page reloaded in the middle of an upload resumes it, not from zero', async () => {
  const { page } = await env.page(PHONE);
  await signIn(page, 'tech@demo.test');
  await openCase(page, 'Bridge 34–36');
  await page.getByRole('tab', { name: 'Files' }).click();

  // A real file on disk (the same file picked again after the reload is recognised by its name,
  // size and modification time), 20 MB: three 8 MiB requests.
  const file = path.join(tmp, 'bridge_34-36_design_v2.stl');
  const bytes = makeStl(400_000);
  writeFileSync(file, bytes);
  await throttleUpload(page, 4_000_000);
  await page.getByLabel('Add a file').setInputFiles(file);
  await page.getByRole('button', { name: /^Upload/ }).click();
  // Past the first request (8 MiB): the server has that much for certain.
  await waitProgress(page, 'bridge_34-36_design_v2.stl', { above: 1_000_000, moving: true });
  await screenshot(page, 'upload-in-progress-390', page.getByTestId('upload').first());
  await waitProgress(page, 'bridge_34-36_design_v2.stl', { above: 9_000_000 });

  const heads = [];
  page.on('response', (r) => {
    if (r.request().method() === 'HEAD' && r.url().includes('/api/v1/uploads/')) heads.push({ status: r.status(), offset: Number(r.headers()['upload-offset']) });
  });
  await page.reload();
  await page.getByRole('tab', { name: 'Files' }).click();
  const interrupted = page.getByTestId('interrupted-upload');
  await interrupted.filter({ hasText: /\d+% received/ }).waitFor();
  await screenshot(page, 'upload-interrupted-390', interrupted);

  await page.getByLabel('Choose the file again').setInputFiles(file);
  const resumed = await waitProgress(page, 'bridge_34-36_design_v2.stl', { above: 0 });
  const done = await waitProgress(page, 'bridge_34-36_design_v2.stl', { done: true });
  const tusHead = heads.filter((h) => h.status === 200).at(-1);
  assert.ok(tusHead && tusHead.offset >= 8 * 1024 * 1024, `the server had ${JSON.stringify(heads)} after the reload`);
  assert.ok(resumed.value >= tusHead.offset, `progress started at ${resumed.value}, not 0`);
  assert.equal(done.max, bytes.length);
  await page.getByTestId('upload').filter({ hasText: /resumed at/ }).waitFor();
  await page.getByTestId('file').filter({ hasText: 'bridge_34-36_design_v2.stl' }).waitFor();
  await interrupted.waitFor({ state: 'detached' });
  // Once done, nothing about the upload stays in the tab's storage.
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
  env.assertNoProblems();
});

test('refusals are explained; photos show, PDFs open in a new tab, files go with chat messages', async () => {
  const { page, context } = await env.page();
  await signIn(page, 'doctor@demo.test');
  await openCase(page, 'Veneers 12–22');
  await page.getByRole('tab', { name: 'Files' }).click();

  async function upload(name, buffer, mimeType) {
    await page.getByLabel('Add a file').setInputFiles({ name, mimeType, buffer });
    await page.getByRole('button', { name: /^Upload/ }).click();
    const row = page.getByTestId('upload').filter({ hasText: name });
    await row.and(page.locator('[data-state=done], [data-state=failed]')).waitFor();
    return row;
  }
  // A renamed executable and the EICAR test file: refused, and said so.
  const exe = await upload('scan.stl', Buffer.concat([Buffer.from('MZ'), Buffer.alloc(2000, 1)]), 'model/stl');
  await exe.getByRole('alert').filter({ hasText: /Not accepted: a scan must be STL, PLY or OBJ/ }).waitFor();
  const eicar = await upload('eicar.stl', Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'), 'model/stl');
  await eicar.getByRole('alert').filter({ hasText: /malware/ }).waitFor();

  // A PDF: a document by default; it opens in a new tab, inline, through a signed link.
  await page.getByLabel('Add a file').setInputFiles({ name: 'referral.pdf', mimeType: 'application/pdf', buffer: makePdf('Referral') });
  assert.equal(await page.getByLabel('Kind').inputValue(), 'document');
  await page.getByRole('button', { name: /^Upload/ }).click();
  const pdf = page.getByTestId('file').filter({ hasText: 'referral.pdf' });
  await pdf.getByRole('button', { name: 'Open…' }).click();
  const [tab] = await Promise.all([context.waitForEvent('page'), pdf.getByRole('button', { name: 'Open the PDF in a new tab' }).click()]);
  assert.match(tab.url(), /\/api\/v1\/files\/[0-9a-f-]+\/content\?.*&inline=1$/);
  const res = await context.request.get(tab.url());
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['content-type'], 'application/pdf');
  assert.match(res.headers()['content-disposition'], /^inline/);
  await tab.close();

  // A shade photo (in the crown's case): a photo by default, shown as an image.
  await openCase(page, CASE);
  await page.getByRole('tab', { name: 'Files' }).click();
  await page.getByLabel('Add a file').setInputFiles({ name: 'shade_11.png', mimeType: 'image/png', buffer: makePng() });
  assert.equal(await page.getByLabel('Kind').inputValue(), 'photo');
  await page.getByRole('button', { name: /^Upload/ }).click();
  const photo = page.getByTestId('file').filter({ hasText: 'shade_11.png' });
  await photo.getByRole('button', { name: 'Show', exact: true }).click();
  await page.waitForFunction(() => {
    const img = document.querySelector('.image-preview img');
    return img && img.complete && img.naturalWidth > 0;
  });

  // Attach the photo and the scan to a message: the technician sees them with it.
  const { page: tech } = await env.page();
  await signIn(tech, 'tech@demo.test');
  await openCase(tech, CASE);
  await page.getByRole('button', { name: 'Attach files' }).click();
  const picker = page.getByTestId('attach-picker');
  await picker.getByLabel(/shade_11\.png/).check();
  await picker.getByLabel(/crown_11_design\.stl/).check();
  await page.getByLabel('Message', { exact: true }).fill('Shade and prep, see attached.');
  await page.getByRole('button', { name: 'Send' }).click();
  const msg = tech.locator('.msg', { hasText: 'Shade and prep, see attached.' });
  await msg.getByRole('button', { name: /shade_11\.png/ }).waitFor();
  await msg.getByRole('button', { name: /crown_11_design\.stl/ }).click();
  // A click on an attachment shows the file, its preview open.
  await tech.getByTestId('file').filter({ hasText: 'crown_11_design.stl' }).getByTestId('mesh-viewer').waitFor();
  env.assertNoProblems();
});

test('a paused upload resumes where the server stopped, not from zero', async () => {
  const { page } = await env.page();
  await signIn(page, 'tech@demo.test');
  await openCase(page, 'Implant crown 46');
  await page.getByRole('tab', { name: 'Files' }).click();
  const name = 'implant_46_margin_scan.stl';
  const bytes = makeStl(400_000); // 20 MB: three requests
  const cdp = await throttleUpload(page, 2_000_000);
  await page.getByLabel('Add a file').setInputFiles({ name, mimeType: 'model/stl', buffer: bytes });
  await page.getByRole('button', { name: /^Upload/ }).click();
  await waitProgress(page, name, { above: 9_000_000, moving: true });
  const row = page.getByTestId('upload').filter({ hasText: name });
  await row.getByRole('button', { name: 'Pause' }).click();
  await row.filter({ hasText: 'Paused' }).waitFor();
  await cdp.detach();

  // Resuming asks the server where it stands (HEAD) and sends only the rest.
  const heads = [];
  page.on('response', (r) => {
    if (r.request().method() === 'HEAD' && r.url().includes('/api/v1/uploads/')) heads.push(Number(r.headers()['upload-offset']));
  });
  const patches = [];
  page.on('request', (r) => {
    if (r.method() === 'PATCH' && r.url().includes('/api/v1/uploads/')) patches.push(Number(r.headers()['upload-offset']));
  });
  await row.getByRole('button', { name: 'Resume' }).click();
  await row.filter({ hasText: /resumed at [1-9]/ }).waitFor();
  const done = await waitProgress(page, name, { done: true });
  assert.equal(done.max, bytes.length);
  assert.ok(heads.length >= 1 && heads[0] >= 8 * 1024 * 1024, `resumed from ${heads}`);
  // The first request after resuming starts where the server stood: nothing is sent twice.
  assert.equal(patches[0], heads[0]);
  await page.getByTestId('file').filter({ hasText: name }).waitFor();
  env.assertNoProblems();
});
