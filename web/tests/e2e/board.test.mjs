// The clinic admin's status board updates live: the lab moves a case and the card changes column
// with no reload; a doctor opens a case and it appears; at-risk cases stand out.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

const card = (page, label) => page.locator(`.card:has(a:text-is("${label}"))`);
const column = (page, key) => page.locator(`[data-column="${key}"]`);

test("a clinic admin's board moves the card live when the lab changes the status", async () => {
  const { page: admin } = await env.page();
  const { page: tech } = await env.page();
  await signIn(admin, 'admin@demo.test'); // clinic admins start on the board
  await admin.getByRole('heading', { name: 'Clinic board' }).waitFor();

  // Every demo case of the clinic, in its column; the at-risk one stands out.
  await column(admin, 'received').locator(card(admin, 'Crown 11 — shade A2')).waitFor();
  // (The demo's lab may already have asked for approval of the bridge's first design.)
  await admin.locator('[data-column="in_design"], [data-column="awaiting_approval"]').locator(card(admin, 'Bridge 34–36')).waitFor();
  await column(admin, 'draft').locator(card(admin, 'Inlay 26')).waitFor();
  // Due in a day and still in production: the implant crown is at risk, and shows it.
  await card(admin, 'Implant crown 46').and(admin.locator('.at-risk')).waitFor();
  assert.equal(await card(admin, 'Implant crown 46').getByText('At risk').count(), 1);
  await screenshot(admin, 'board-clinic-desktop');

  // The lab moves the crown into design from its case room.
  await signIn(tech, 'tech@demo.test');
  await openCase(tech, 'Crown 11 — shade A2');
  await tech.getByTestId('status-select').selectOption('in_design');
  await tech.getByRole('button', { name: 'Change status' }).click();
  await tech.locator('.room-head [data-status="in_design"]').waitFor();

  // The admin's card moves column by itself.
  await column(admin, 'in_design').locator(card(admin, 'Crown 11 — shade A2')).waitFor();
  assert.equal(await column(admin, 'received').locator(card(admin, 'Crown 11 — shade A2')).count(), 0);
  env.assertNoProblems();
});

test('a new case and a re-dated one show on the board live', async () => {
  const { page: admin } = await env.page(PHONE);
  const { page: doctor } = await env.page();
  await signIn(admin, 'admin@demo.test');
  await admin.getByRole('heading', { name: 'Clinic board' }).waitFor();

  await signIn(doctor, 'doctor@demo.test');
  await doctor.getByRole('link', { name: 'New case' }).first().click();
  await doctor.getByLabel('Label').fill('Onlay 37');
  await doctor.getByRole('button', { name: 'Create case' }).click();
  await doctor.getByRole('heading', { level: 1, name: 'Onlay 37' }).waitFor();
  await column(admin, 'draft').locator(card(admin, 'Onlay 37')).waitFor();

  // A due date tomorrow puts a draft at risk (it needs a week): the card turns red live.
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await doctor.getByRole('tab', { name: 'Details' }).click();
  await doctor.getByLabel('Due date').fill(tomorrow);
  await doctor.getByRole('button', { name: 'Save details' }).click();
  await card(admin, 'Onlay 37').and(admin.locator('.at-risk')).waitFor();
  await screenshot(admin, 'board-clinic-390');
  env.assertNoProblems();
});

test('a clinic admin routes a draft to the lab and submits it: it reaches the lab board live', async () => {
  const { page: tech } = await env.page();
  const { page: admin } = await env.page();
  await signIn(tech, 'tech@demo.test');
  await tech.getByRole('heading', { name: 'Lab board' }).waitFor();
  await column(tech, 'in_production').locator(card(tech, 'Implant crown 46')).waitFor();
  // Drafts never reach the lab.
  assert.equal(await card(tech, 'Veneers 12–22').count(), 0);
  assert.equal(await card(tech, 'Inlay 26').count(), 0);
  await screenshot(tech, 'board-lab-desktop');

  await signIn(admin, 'admin@demo.test');
  await openCase(admin, 'Veneers 12–22');
  // Not routed yet: submitting is not offered.
  assert.deepEqual(await admin.getByTestId('status-select').locator('option').allTextContents(), ['Choose a status…', 'On hold', 'Cancelled']);
  await admin.getByRole('tab', { name: 'Details' }).click();
  await admin.getByRole('combobox', { name: /^Lab\b/ }).selectOption({ label: 'Demo Lab' });
  await admin.getByRole('button', { name: 'Save details' }).click();
  await admin.getByText('routed the case to Demo Lab').waitFor();
  await admin.getByTestId('status-select').selectOption('submitted');
  await admin.getByRole('button', { name: 'Change status' }).click();
  await column(tech, 'submitted').locator(card(tech, 'Veneers 12–22')).waitFor();
  env.assertNoProblems();
});

test('the case list searches, filters and follows changes live', async () => {
  const { page: doctor } = await env.page(PHONE);
  const { page: tech } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await doctor.getByRole('heading', { name: 'Cases' }).waitFor();
  const rows = doctor.locator('.case-row');
  await doctor.getByRole('link', { name: 'Bridge 34–36' }).waitFor();

  await doctor.getByLabel('Search').fill('bridge');
  await doctor.waitForFunction(() => document.querySelectorAll('.case-row').length === 1);
  assert.equal(await rows.first().locator('.case-link').textContent(), 'Bridge 34–36');
  assert.match(doctor.url(), /q=bridge/);
  await doctor.getByRole('button', { name: 'Clear filters' }).click();
  // The bridge is in design (or, in newer demo data, waiting for approval of its first design).
  const status = await doctor.locator('.case-row', { hasText: 'Bridge 34–36' }).locator('[data-status]').first().getAttribute('data-status');
  const next = status === 'awaiting_approval' ? 'in_design' : 'in_production';
  await doctor.getByLabel('Status').selectOption(status);
  await doctor.getByRole('link', { name: 'Bridge 34–36' }).waitFor();
  await doctor.waitForFunction((st) => [...document.querySelectorAll('.case-row [data-status]')].every((b) => b.dataset.status === st), status);
  await screenshot(doctor, 'case-list-390');

  // The lab moves the bridge on: it leaves the filtered list by itself.
  await signIn(tech, 'tech@demo.test');
  await openCase(tech, 'Bridge 34–36');
  await tech.getByTestId('status-select').selectOption(next);
  await tech.getByRole('button', { name: 'Change status' }).click();
  await doctor.getByRole('link', { name: 'Bridge 34–36' }).waitFor({ state: 'detached' });
  await doctor.getByLabel('Status').selectOption('');
  const bridge = doctor.locator('.case-row', { hasText: 'Bridge 34–36' });
  await bridge.locator(`[data-status="${next}"]`).waitFor();
  env.assertNoProblems();
});
