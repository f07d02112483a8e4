// The clinic admin's case list narrows by doctor, lab and due date (together with search and
// status, covered in board.test.mjs), and the filters live in the URL.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, signIn } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

/** Waits until the list shows exactly these cases. */
async function shows(page, labels) {
  const want = [...labels].sort();
  await page.waitForFunction(
    (w) => JSON.stringify([...document.querySelectorAll('.case-row .case-link')].map((a) => a.textContent).sort()) === JSON.stringify(w),
    want,
  );
}

test('doctor, lab and due-date filters narrow the list', async () => {
  const { page: admin } = await env.page();
  await signIn(admin, 'admin@demo.test');
  await admin.goto('/cases');
  await admin.getByRole('heading', { name: 'Cases' }).waitFor();
  const all = ['Crown 11 — shade A2', 'Bridge 34–36', 'Veneers 12–22', 'Implant crown 46', 'Inlay 26'];
  await shows(admin, all);

  await admin.getByLabel('Doctor').selectOption({ label: 'Dr. Ben Okafor' });
  await shows(admin, ['Implant crown 46', 'Inlay 26']);
  assert.match(admin.url(), /doctor_id=/);
  await admin.getByLabel('Lab').selectOption({ label: 'Demo Lab' });
  await shows(admin, ['Implant crown 46']);

  await admin.getByRole('button', { name: 'Clear filters' }).click();
  await shows(admin, all);
  await admin.getByLabel('Lab').selectOption({ label: 'Demo Lab' });
  await shows(admin, ['Crown 11 — shade A2', 'Bridge 34–36', 'Implant crown 46']);
  // Due within three days (the demo's dates are relative to today).
  const inThreeDays = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
  await admin.getByLabel('Due on or before').fill(inThreeDays);
  await shows(admin, ['Bridge 34–36', 'Implant crown 46']);
  assert.match(admin.url(), new RegExp(`due_before=${inThreeDays}`));
  // The URL is the state: a reload shows the same narrowed list.
  await admin.reload();
  await shows(admin, ['Bridge 34–36', 'Implant crown 46']);
  env.assertNoProblems();
});
