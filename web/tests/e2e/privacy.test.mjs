// No clinical data is kept on the device: nothing of a case in localStorage, sessionStorage,
// IndexedDB or Cache Storage (and no service worker) — with an upload in progress and after 3D,
// photo and audio previews too: only the upload's URL sits in sessionStorage, so that a reload can
// resume it — and signing out clears the page, every tab of the browser, and the cookies. Owners
// and auditors see no case content at all.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePng, makeStl, openCase, PHONE, screenshot, setup, signIn, throttleUpload } from './harness.mjs';

const CASE = 'Veneers 12–22';
const SECRET = 'Translucent incisal third, patient is anxious';
/** A file name can say more than it should: it must not be kept on the device either. */
const FILE_NAME = 'maria-lopez-veneers-scan.stl';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

/** Everything the origin keeps on the device, as text. */
async function deviceStorage(page) {
  return page.evaluate(async () => {
    const dump = (s) => Object.fromEntries(Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))]));
    return {
      local: dump(localStorage),
      session: dump(sessionStorage),
      indexedDB: (await indexedDB.databases()).map((d) => d.name),
      caches: await caches.keys(),
      serviceWorkers: (await navigator.serviceWorker.getRegistrations()).length,
    };
  });
}

test('no case content on the device, and signing out clears every tab', async () => {
  const { page, context } = await env.page();
  await signIn(page, 'doctor@demo.test');
  const second = await context.newPage(); // a second tab of the same browser
  await second.goto('/board');
  await second.getByRole('heading', { name: 'My board' }).waitFor();
  await page.bringToFront(); // background tabs get no animation frames: Playwright's clicks would wait

  await openCase(page, CASE);
  await page.getByLabel('Message', { exact: true }).fill(SECRET);
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await page.locator('.msg:not([data-pending])', { hasText: SECRET }).waitFor();
  await page.getByRole('tab', { name: 'Digital Rx' }).click();
  await page.getByTestId('rx').waitFor();

  // Two files of the case, then an upload in progress (paused half way: it could resume after a
  // reload of this tab).
  await page.getByRole('tab', { name: 'Files' }).click();
  for (const [name, mimeType, buffer] of [
    ['veneers_prep_scan.stl', 'model/stl', makeStl(2_000)],
    ['veneers_shade.png', 'image/png', makePng()],
  ]) {
    await page.getByLabel('Add a file').setInputFiles({ name, mimeType, buffer });
    await page.getByRole('button', { name: /^Upload/ }).click();
    await page.getByTestId('file').filter({ hasText: name }).waitFor();
  }
  const cdp = await throttleUpload(page, 2_000_000);
  await page.getByLabel('Add a file').setInputFiles({ name: FILE_NAME, mimeType: 'model/stl', buffer: makeStl(200_000) });
  await page.getByRole('button', { name: /^Upload/ }).click();
  await page.waitForFunction(() => (document.querySelector('[data-state=uploading] progress')?.value ?? 0) > 1_000_000);
  const inProgress = page.getByTestId('upload').filter({ hasText: FILE_NAME });
  await inProgress.getByRole('button', { name: 'Pause' }).click();
  await inProgress.filter({ hasText: 'Paused' }).waitFor();
  await cdp.detach();

  // Previews: the scan in 3D, the photo — fetched, never stored.
  await page.getByTestId('file').filter({ hasText: 'veneers_prep_scan.stl' }).getByRole('button', { name: 'Show in 3D' }).click();
  await page.locator('[data-testid=mesh-viewer][data-state=ready]').waitFor();
  await page.getByTestId('file').filter({ hasText: 'veneers_shade.png' }).getByRole('button', { name: 'Show', exact: true }).click();
  await page.waitForFunction(() => document.querySelector('.image-preview img')?.naturalWidth > 0);
  await page.goto('/cases');
  await page.getByRole('link', { name: CASE }).waitFor();

  const stored = await deviceStorage(page);
  const text = JSON.stringify(stored);
  for (const clinical of [CASE, SECRET, FILE_NAME, 'maria', 'Crown 11', 'Bridge 34', 'Scan attached', 'veneers_prep', 'veneers_shade']) {
    assert.ok(!text.includes(clinical), `"${clinical}" found on the device: ${text}`);
  }
  assert.deepEqual(stored.indexedDB, []);
  assert.deepEqual(stored.caches, []);
  assert.equal(stored.serviceWorkers, 0);
  // Only a UI preference in localStorage; in sessionStorage only what resumes the upload: its URL
  // on the server, size, case id, kind and start time, under a hashed key.
  assert.deepEqual(Object.keys(stored.local), ['articula.portal']);
  const session = Object.entries(stored.session);
  assert.equal(session.length, 1, text);
  const [key, value] = session[0];
  assert.match(key, /^articula\.upload::[0-9a-f]{64}::[0-9a-f-]{36}$/);
  assert.deepEqual(Object.keys(JSON.parse(value)).sort(), ['caseId', 'creationTime', 'kind', 'size', 'uploadUrl']);
  assert.match(JSON.parse(value).uploadUrl, /^\/api\/v1\/uploads\/[0-9a-f-]{36}$/);
  // Cookies: the session's, and nothing else.
  const cookies = (await context.cookies()).map((c) => c.name).sort();
  assert.deepEqual(cookies, ['__Host-articula_at', '__Host-articula_csrf', '__Secure-articula_rt']);

  // Sign out: this tab and the other go to the sign-in page.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  await second.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  const after = await deviceStorage(page);
  assert.deepEqual(after.session, {});
  assert.deepEqual(Object.keys(after.local), ['articula.portal']);
  assert.deepEqual((await context.cookies()).map((c) => c.name), []);

  // Going back shows no case: the page's memory was dropped and the server refuses the session.
  await page.goBack();
  await page.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  assert.ok(!(await page.content()).includes(SECRET));
  const status = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  assert.equal(status, 401);
  env.assertNoProblems();
});

test('owners and auditors get a page without case content', async () => {
  for (const email of ['owner@demo.test', 'auditor@demo.test']) {
    const { page } = await env.page();
    await signIn(page, email);
    // Owners start on their organisation, auditors on the audit log (ids and flags, no content).
    if (email.startsWith('owner')) {
      await page.getByRole('heading', { name: 'Your organisation' }).waitFor();
      await page.getByRole('heading', { name: 'Members of Demo Clinic' }).waitFor();
    } else {
      await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      await page.getByTestId('audit-count').waitFor();
    }
    assert.equal(await page.getByRole('link', { name: 'Cases' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Board' }).count(), 0);
    // Case pages are not theirs either.
    await page.goto('/cases');
    await page.getByRole('heading', { name: 'Your organisation' }).waitFor();
    if (email.startsWith('owner')) await screenshot(page, 'governance-owner-desktop');
    else await page.getByRole('link', { name: 'open the audit log' }).waitFor();
  }
  env.assertNoProblems();
});

test('the two portals sign in separately', async () => {
  const { page } = await env.page(PHONE);
  await page.goto('/lab/sign-in');
  await page.getByRole('heading', { name: 'Lab portal' }).waitFor();
  await screenshot(page, 'sign-in-lab-390');
  // A clinic account on the lab portal is told where to go.
  await page.getByLabel('E-mail').fill('doctor@demo.test');
  await page.getByLabel('Password').fill('demo-password-e2e');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('This account does not belong to the lab portal.').waitFor();
  await page.getByRole('link', { name: 'Use the clinic portal' }).click();
  await page.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  // A wrong password says so, without telling which part was wrong.
  await page.getByLabel('E-mail').fill('doctor@demo.test');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('The e-mail or the password is wrong.').waitFor();

  const { page: desk } = await env.page();
  await desk.goto('/clinic/sign-in');
  await desk.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  await screenshot(desk, 'sign-in-clinic-desktop');
  env.assertNoProblems();
});
