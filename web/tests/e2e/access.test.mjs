// People & access: a doctor gives a colleague access to one case until a date (a member of the
// case sees it appear live; the colleague opens the case) and takes it back (the colleague's open
// case closes within a second); an owner gives support access and every member sees the banner
// at desktop and phone widths until it is revoked; a label that looks like a patient's name is
// warned about before the case is created.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, openCase, PHONE, screenshot, setup, signIn, waitLive } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';

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

async function accessTab(page) {
  await page.getByRole('tab', { name: 'People & access' }).click();
  await page.getByRole('heading', { name: 'People & access' }).waitFor();
}

/** YYYY-MM-DD `days` from today (UTC), and how the page writes it. */
function day(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  const iso = d.toISOString().slice(0, 10);
  const shown = d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
  return { iso, shown };
}

let caseUrl;

test('a doctor gives a colleague view and chat until a date, live, and revoking it closes their case', async () => {
  const { page: doctor } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await openCase(doctor, CASE);
  caseUrl = new URL(doctor.url()).pathname;
  await accessTab(doctor);
  await doctor.getByTestId('no-grants').waitFor();

  // A member of the case (the lab) watches the list.
  const { page: tech } = await env.page(PHONE);
  await signIn(tech, 'tech@demo.test');
  await openCase(tech, CASE);
  await accessTab(tech);
  assert.equal(await tech.getByRole('button', { name: 'Give access' }).count(), 0, 'a technician does not manage access');

  // The colleague cannot open it yet.
  const { page: ben } = await env.page();
  await signIn(ben, 'doctor2@demo.test');
  await ben.goto(caseUrl);
  await ben.getByRole('heading', { name: 'Case unavailable' }).waitFor();

  const until = day(10);
  const form = doctor.getByRole('form', { name: 'Give access' });
  await form.getByLabel('Person').selectOption({ label: 'Dr. Ben Okafor — doctor, Demo Clinic' });
  assert.ok(await form.getByLabel('chat').isChecked(), 'chat is offered checked');
  await form.getByLabel('Until (optional)').fill(until.iso);
  await screenshot(doctor, 'access-give-desktop', form);
  await form.getByRole('button', { name: 'Give access' }).click();
  await doctor.getByRole('status').filter({ hasText: `Dr. Ben Okafor may now read the case and chat, until ${until.shown}.` }).waitFor();

  // Live on the technician's phone, without a reload.
  const seen = tech.locator('[data-grant="Dr. Ben Okafor"]');
  await seen.getByText(`May read the case and chat, until ${until.shown}.`).waitFor();
  await seen.getByText('Given by Dr. Ana Ortiz').waitFor();
  await screenshot(tech, 'access-list-390', seen);

  // The colleague opens the case and may chat in it.
  await ben.goto(caseUrl);
  await ben.getByRole('heading', { level: 1, name: CASE }).waitFor();
  await waitLive(ben);
  const box = ben.getByLabel('Message', { exact: true });
  await box.fill('Covering for Ana today');
  await box.press('Enter');
  await doctor.locator('.msg', { hasText: 'Covering for Ana today' }).waitFor();
  await screenshot(doctor, 'access-panel-desktop', doctor.locator('[data-grant="Dr. Ben Okafor"]'));

  // Revoked (after a confirmation): the colleague's open case closes within a second.
  await doctor.getByRole('button', { name: 'Revoke access of Dr. Ben Okafor' }).click();
  const dialog = doctor.getByRole('dialog');
  await dialog.getByRole('heading', { name: 'Revoke the access of Dr. Ben Okafor?' }).waitFor();
  const revoked = doctor.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/grants/'));
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  assert.equal((await revoked).status(), 204);
  const t0 = Date.now();
  await ben.getByRole('heading', { name: 'Case unavailable' }).waitFor();
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 1000, `the colleague's page lost the case after ${elapsed} ms`);
  await tech.getByTestId('no-grants').waitFor();
  await doctor.getByRole('status').filter({ hasText: 'Dr. Ben Okafor no longer has access to this case.' }).waitFor();
  env.assertNoProblems();
});

test('an owner gives support access: a banner for every member at both widths, gone live when revoked', async () => {
  assert.ok(caseUrl, 'needs the first test');
  const views = [];
  for (const viewport of [DESKTOP, PHONE]) {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    await openCase(page, CASE);
    views.push(page);
  }

  // The owner manages access from the case's link, without seeing the case's content.
  const { page: owner } = await env.page();
  await signIn(owner, 'owner@demo.test');
  await owner.goto(caseUrl);
  await owner.getByRole('heading', { name: 'Case access' }).waitFor();
  assert.equal(await owner.getByText(CASE).count(), 0, 'an owner does not see the case label');
  const support = owner.getByRole('form', { name: 'Support access' });
  await support.getByLabel('Support account e-mail').fill('nobody@demo.test');
  await support.getByRole('button', { name: 'Give support access' }).click();
  await owner.getByRole('alert').filter({ hasText: 'No active account has the e-mail nobody@demo.test.' }).waitFor();
  const until = day(7);
  await support.getByLabel('Support account e-mail').fill('support@demo.test');
  assert.equal(await support.getByLabel('Until').inputValue(), until.iso, 'a week by default');
  await support.getByRole('button', { name: 'Give support access' }).click();
  await owner.getByRole('status').filter({ hasText: `Sam Support may read this case, until ${until.shown}.` }).waitFor();

  const text = `Support access: Sam Support can read this case until ${until.shown}, given by Olga Owner.`;
  for (const [page, viewport, name] of [
    [views[0], DESKTOP, 'support-banner-desktop'],
    [views[1], PHONE, 'support-banner-390'],
  ]) {
    const banner = page.getByTestId('support-banner');
    await banner.getByText(text).waitFor(); // live: the page was open before
    await onScreen(page, banner, viewport);
    await screenshot(page, name);
  }

  // The support account reads the case (and sees the banner too).
  const { page: sam } = await env.page();
  await signIn(sam, 'support@demo.test');
  await sam.goto(caseUrl);
  await sam.getByRole('heading', { level: 1, name: CASE }).waitFor();
  await sam.getByTestId('support-banner').getByText(/you can read this case/).waitFor();

  await screenshot(owner, 'access-owner-desktop');
  await owner.getByRole('button', { name: 'Revoke access of Sam Support' }).click();
  await owner.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  for (const page of views) await page.getByTestId('support-banner').waitFor({ state: 'detached' });
  await sam.getByRole('heading', { name: 'Case unavailable' }).waitFor();
  env.assertNoProblems();
});

test("a label that looks like a patient's name is warned about; Save anyway is recorded", async () => {
  const { page } = await env.page();
  await signIn(page, 'doctor@demo.test');
  await page.goto('/cases/new');
  const label = page.getByLabel('Label');
  const create = page.getByRole('button', { name: 'Create case' });
  const warning = page.getByTestId('label-warning');

  await label.fill('Maria Lopez crown');
  await create.click();
  await warning.getByText("This looks like a patient's name. Use a case code or initials instead.").waitFor();
  await screenshot(page, 'label-warning-desktop');
  await warning.getByRole('button', { name: 'Change it' }).click();
  await warning.waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-describedby')), 'label-help');

  // A restoration label goes straight through.
  await label.fill('Crown 11 A2');
  const plain = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/api/v1/cases'));
  await create.click();
  assert.equal((await plain).postDataJSON().label_warning, undefined);
  await page.getByRole('heading', { level: 1, name: 'Crown 11 A2' }).waitFor();
  assert.equal(await warning.count(), 0);

  // Kept after the warning: the request says so (the server audits it: tests/api/grants.rs).
  await page.goto('/cases/new');
  await label.fill('Maria Lopez crown');
  await create.click();
  const kept = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/api/v1/cases'));
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/cases'));
  await warning.getByRole('button', { name: 'Save anyway' }).click();
  assert.equal((await kept).postDataJSON().label_warning, 'shown_and_kept');
  assert.equal((await answer).status(), 201);
  await page.getByRole('heading', { level: 1, name: 'Maria Lopez crown' }).waitFor();
  const caseId = new URL(page.url()).pathname.split('/').pop();

  // The clinic's auditor finds it in the audit log: who, which case, the choice — not the label.
  const { page: auditor } = await env.page();
  await signIn(auditor, 'auditor@demo.test');
  const deadline = Date.now() + 15_000;
  let entries = [];
  while (entries.length === 0) {
    assert.ok(Date.now() < deadline, 'the label warning was not audited');
    const res = await auditor.request.get(`/api/v1/audit?action=case.label_warning&case=${caseId}`);
    assert.equal(res.status(), 200);
    entries = (await res.json()).entries;
    // Polling the audit log (written by a background actor) until the entry is there.
    if (!entries.length) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(entries.length, 1);
  assert.deepEqual(JSON.parse(entries[0].details), { choice: 'shown_and_kept', on: 'create' });
  assert.ok(!JSON.stringify(entries[0]).includes('Maria'), 'no label text in the audit');

  // In the details too.
  await page.getByRole('tab', { name: 'Details' }).click();
  const details = page.getByRole('tabpanel');
  await details.getByLabel('Label').fill('Ana Ruiz bridge');
  await details.getByRole('button', { name: 'Save details' }).click();
  await details.getByTestId('label-warning').waitFor();
  const patched = page.waitForRequest((r) => r.method() === 'PATCH');
  await details.getByRole('button', { name: 'Save anyway' }).click();
  assert.equal((await patched).postDataJSON().label_warning, 'shown_and_kept');
  await page.getByRole('heading', { level: 1, name: 'Ana Ruiz bridge' }).waitFor();
  env.assertNoProblems();
});
