// The owner's organisation page: taking a doctor's role back closes the case open on the
// doctor's device within a second; an incident notice reaches a doctor at desktop and phone
// widths until they acknowledge it, and the owner sees the acknowledgement.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

/** Fails unless the whole of `locator` is inside the viewport, without scrolling. */
async function onScreen(page, locator, viewport) {
  await page.evaluate(() => window.scrollTo(0, 0));
  const box = await locator.boundingBox();
  assert.ok(box, 'not rendered');
  assert.ok(box.y >= 0 && box.y + box.height <= viewport.height, `off screen: ${JSON.stringify(box)}`);
  assert.ok(box.x >= 0 && box.x + box.width <= viewport.width, `off screen: ${JSON.stringify(box)}`);
}

test("an owner takes a doctor's role back and the doctor's open case closes within a second", async () => {
  const { page: doctor } = await env.page();
  await signIn(doctor, 'doctor2@demo.test');
  await openCase(doctor, 'Implant crown 46');

  const { page: owner } = await env.page();
  await signIn(owner, 'owner@demo.test');
  await owner.getByRole('heading', { name: 'Members of Demo Clinic' }).waitFor();
  const row = owner.locator('tr[data-member="doctor2@demo.test"]');
  await row.getByText('1 active').waitFor();
  await row.getByRole('button', { name: 'Remove role Doctor of Dr. Ben Okafor' }).click();
  const dialog = owner.getByRole('dialog');
  await dialog.getByRole('heading', { name: /Remove Dr\. Ben Okafor’s role doctor\?/ }).waitFor();
  await dialog.getByText(/their open cases close on their devices within a second/).waitFor();
  await screenshot(owner, 'org-remove-role-desktop');

  const removed = owner.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/roles/doctor'));
  await dialog.getByRole('button', { name: 'Remove role' }).click();
  const res = await removed;
  assert.equal(res.status(), 204);
  const t0 = Date.now();
  await doctor.getByRole('heading', { name: 'Case unavailable' }).waitFor();
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 1000, `the doctor's page lost the case after ${elapsed} ms`);
  await doctor.getByText('You no longer have access to this case.').waitFor();

  // The owner's table follows: a former member, and the dialog is gone.
  await row.getByText('Former member').waitFor();
  await owner.getByRole('status').filter({ hasText: 'Dr. Ben Okafor is no longer doctor of Demo Clinic.' }).waitFor();
  assert.equal(await owner.getByRole('dialog').count(), 0);

  // The doctor's sessions can be ended too; the doctor's page signs out.
  await row.getByRole('button', { name: 'End sessions of Dr. Ben Okafor' }).click();
  await owner.getByRole('dialog').getByText(/signed out on every device at once/).waitFor();
  await owner.getByRole('dialog').getByRole('button', { name: 'End sessions' }).click();
  await row.getByText('none', { exact: true }).waitFor();
  await doctor.getByRole('heading', { name: 'Clinic portal' }).waitFor();

  // The last owner cannot step down: the page says why.
  await owner
    .locator('tr[data-member="owner@demo.test"]')
    .getByRole('button', { name: 'Remove role Owner of Olga Owner' })
    .click();
  await owner.getByRole('dialog').getByRole('button', { name: 'Remove role' }).click();
  await owner.getByRole('alert').filter({ hasText: 'an organisation keeps at least one owner' }).waitFor();
  env.assertNoProblems();
});

test('a notice reaches a doctor at both widths until acknowledged, and the owner sees the ack', async () => {
  const { page: owner } = await env.page();
  await signIn(owner, 'owner@demo.test');
  const form = owner.getByRole('form', { name: 'Publish incident notice' });
  await form.getByLabel('Title').fill('Stolen laptop at the front desk');
  await form.getByLabel('What happened').fill('A laptop signed in to Articula was stolen on Monday morning.');
  await form.getByLabel('Scope').fill('Sessions opened at the front desk; no files were stored on it.');
  await form.getByLabel('What users should do').fill('Sign in again, and tell us of anything you did not do.');
  await form.getByRole('button', { name: 'Publish notice' }).click();
  const item = owner.locator('[data-notice="Stolen laptop at the front desk"]');
  await item.getByText(/^0 of \d+ members acknowledged$/).waitFor();

  const views = [];
  for (const [viewport, name] of [
    [DESKTOP, 'incident-notice-desktop'],
    [PHONE, 'incident-notice-390'],
  ]) {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    const banner = page.getByTestId('incident-notice');
    await banner.getByRole('heading', { name: 'Stolen laptop at the front desk' }).waitFor();
    await banner.getByText(/What you should do:\s+Sign in again/).waitFor();
    await onScreen(page, banner.getByRole('heading', { name: 'Stolen laptop at the front desk' }), viewport);
    await onScreen(page, banner.getByRole('button', { name: 'I have read this' }), viewport);
    await screenshot(page, name);
    views.push(page);
  }
  const [desk, phone] = views;
  await phone.getByRole('button', { name: 'I have read this' }).click();
  await phone.getByTestId('incident-notice').waitFor({ state: 'detached' });
  for (const page of [phone, desk]) {
    const asked = page.waitForResponse((r) => r.url().endsWith('/api/v1/notices') && r.status() === 200);
    await page.reload();
    await asked;
    await page.getByRole('button', { name: 'Sign out' }).first().waitFor();
    assert.equal(await page.getByTestId('incident-notice').count(), 0);
  }

  await owner.reload();
  await item.getByText(/^1 of \d+ members acknowledged$/).waitFor();
  await screenshot(owner, 'org-owner-desktop');
  await screenshot(owner, 'org-notices-desktop', item);
  const { page: small } = await env.page(PHONE);
  await signIn(small, 'owner@demo.test');
  await small.getByRole('heading', { name: 'Members of Demo Clinic' }).waitFor();
  await small.locator('tr[data-member="doctor@demo.test"]').waitFor();
  await screenshot(small, 'org-owner-390');
  env.assertNoProblems();
});
