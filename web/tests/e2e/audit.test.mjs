// The audit log in the web client (issue 18): a doctor posts a message; the owner finds the
// doctor's sign-in and the message in the log (in words, by name), filters it by person, action
// and date (kept in the address across a reload), pages through it, downloads both exports
// (their counts match the page) and checks the chain. The auditor reads it too; a doctor is told
// it is not for their role. No case content ever appears.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DESKTOP, openCase, PHONE, screenshot, setup, signIn, TIMEOUT } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';
const SECRET = 'Audit-trail check: margin on 11 at 0.5 mm';
const CSV_HEADER = 'kind,org_id,n,at,actor_id,ip,action,target,case_id,details,source,prev_hash,hash';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

/** Today in the browser's calendar (the harness runs the browser in UTC). */
const today = () => new Date().toISOString().slice(0, 10);
const yesterday = () => new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

const rows = (page) => page.locator('tbody.audit-entry');

/** Applies the filters again until `cond` holds: the audit chain is written a moment after
 * what it records (the audit actor tails the event feed), so a fresh entry may not be there on
 * the first read. */
async function applyUntil(page, cond, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const read = page.waitForResponse((r) => r.url().includes('/api/v1/audit?'));
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await read;
    await page.locator('[data-testid="audit-count"], .empty, .audit-page .error').first().waitFor();
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`the audit log never showed ${what}`);
  }
}

/** Every shown row's `attr` (or text of `cell`). */
async function all(page, cell) {
  return rows(page).locator(cell).allTextContents();
}

async function download(page, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name }).click()]);
  const file = await dl.path();
  return { text: readFileSync(file, 'utf8'), filename: dl.suggestedFilename() };
}

/** Nothing of the page sticks out sideways (no horizontal scrolling on a phone). */
async function fitsWidth(page) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `the page is ${scroll} px wide in a ${width} px window`);
}

test('the owner reads, filters, pages, exports and verifies the audit log', async () => {
  const { page: doctor } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await openCase(doctor, CASE);
  const box = doctor.getByLabel('Message', { exact: true });
  await box.fill(SECRET);
  await doctor.getByRole('button', { name: 'Send' }).click();
  await doctor.locator('.msg-own', { hasText: SECRET }).waitFor();

  const { page: owner } = await env.page(DESKTOP);
  await signIn(owner, 'owner@demo.test');
  await owner.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
  await owner.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  await owner.getByTestId('audit-count').waitFor();
  assert.equal(new URL(owner.url()).pathname, '/audit');

  // Paging: 25 a page, then "Load more" continues the chain where the page stopped.
  await owner.getByLabel('Per page').selectOption('25');
  await owner.getByRole('button', { name: 'Apply filters' }).click();
  await owner.getByTestId('audit-count').filter({ hasText: /^25 entries shown, more after them/ }).waitFor();
  assert.equal(await rows(owner).count(), 25);
  const firstN = await rows(owner).evaluateAll((r) => r.map((e) => Number(e.dataset.n)));
  assert.deepEqual(firstN, Array.from({ length: 25 }, (_, i) => i + 1), 'the first page is the chain from its start');
  await owner.getByRole('button', { name: 'Load more' }).click();
  await owner.locator('tbody.audit-entry[data-n="26"]').waitFor();
  const more = await rows(owner).evaluateAll((r) => r.map((e) => Number(e.dataset.n)));
  assert.ok(more.length > 25, 'load more added entries');
  assert.deepEqual(more, Array.from({ length: more.length }, (_, i) => i + 1), 'no entry skipped or repeated');

  // By person and action: the doctor's sign-in, in words, by name.
  await owner.getByLabel('Person').selectOption({ label: 'Dr. Ana Ortiz' });
  await owner.getByLabel('Action', { exact: true }).selectOption({ label: 'Sign-ins (and failed ones)' });
  await applyUntil(owner, async () => (await rows(owner).filter({ hasText: 'Signed in' }).count()) > 0, 'the doctor’s sign-in');
  assert.ok((await all(owner, '.audit-who')).every((w) => w === 'Dr. Ana Ortiz'), 'only the doctor');
  const actions = await rows(owner).evaluateAll((r) => r.map((e) => e.dataset.action));
  assert.ok(actions.every((a) => a.startsWith('auth.login')), `only sign-ins: ${actions}`);
  const url = new URL(owner.url());
  assert.equal(url.searchParams.get('action'), 'auth.login');
  assert.ok(url.searchParams.get('user'));

  // The filters live in the address: a reload keeps them.
  await owner.reload();
  await owner.getByTestId('audit-count').waitFor();
  assert.equal(await owner.getByLabel('Person').inputValue(), url.searchParams.get('user'));
  assert.ok((await all(owner, '.audit-who')).every((w) => w === 'Dr. Ana Ortiz'));

  // Messages of today: the doctor's new message is there, with no word of what it said.
  await owner.getByLabel('Action', { exact: true }).selectOption({ label: 'Messages' });
  await owner.getByLabel('From').fill(today());
  await owner.getByLabel('To (inclusive)').fill(today());
  await applyUntil(owner, async () => (await rows(owner).filter({ hasText: 'Message posted' }).count()) > 0, 'the message');
  const messageActions = await rows(owner).evaluateAll((r) => r.map((e) => e.dataset.action));
  assert.ok(messageActions.every((a) => a.startsWith('case.message_')), `only messages: ${messageActions}`);
  assert.ok((await all(owner, '.audit-who')).every((w) => w === 'Dr. Ana Ortiz'));
  const shown = await rows(owner).count();
  const last = rows(owner).last();
  await last.getByRole('button', { name: /^Details of entry/ }).click();
  await last.getByText('Previous hash').waitFor();
  await last.getByText(/"attachments"/).waitFor();
  assert.ok(!(await owner.content()).includes(SECRET), 'no message text on the page');
  await screenshot(owner, 'audit-owner-desktop');

  // The exports carry the same filters: the same entries, and an end line that says so.
  const csv = await download(owner, 'Export CSV');
  assert.match(csv.filename, /^audit-.*\.csv$/);
  const csvLines = csv.text.trimEnd().split('\n');
  assert.equal(csvLines[0], CSV_HEADER);
  const csvEntries = csvLines.filter((l) => l.startsWith('entry,'));
  assert.equal(csvEntries.length, shown, 'the CSV holds the entries the page shows');
  assert.ok(csvLines.at(-1).startsWith('end,'), 'the CSV ends with its end row');
  assert.ok(csvLines.at(-1).includes('""filtered"":true'));
  assert.ok(csvEntries.every((l) => l.includes('"case.message_')));
  const jsonl = await download(owner, 'Export JSON Lines');
  assert.match(jsonl.filename, /^audit-.*\.jsonl$/);
  const lines = jsonl.text.trimEnd().split('\n').map((l) => JSON.parse(l));
  const end = lines.at(-1);
  assert.equal(end.end, true);
  assert.equal(end.filtered, true);
  const entries = lines.filter((l) => 'hash' in l && 'action' in l);
  assert.equal(entries.length, shown);
  assert.equal(end.entries, shown);
  assert.ok(!csv.text.includes(SECRET) && !jsonl.text.includes(SECRET), 'no message text in the exports');

  // The day before: nothing.
  await owner.getByLabel('From').fill(yesterday());
  await owner.getByLabel('To (inclusive)').fill(yesterday());
  await owner.getByRole('button', { name: 'Apply filters' }).click();
  await owner.getByText('No entries match these filters.').waitFor();

  // Unfiltered, the JSON Lines export is the whole chain, checkable as one.
  await owner.getByRole('link', { name: 'Clear' }).click();
  await owner.getByTestId('audit-count').waitFor();
  const whole = (await download(owner, 'Export JSON Lines')).text.trimEnd().split('\n').map((l) => JSON.parse(l));
  const wholeEnd = whole.at(-1);
  assert.equal(wholeEnd.filtered, false);
  const wholeEntries = whole.filter((l) => 'hash' in l && 'action' in l);
  assert.equal(wholeEnd.entries, wholeEntries.length);
  assert.deepEqual(
    wholeEntries.map((e) => e.n),
    Array.from({ length: wholeEntries.length }, (_, i) => i + 1),
  );

  await owner.getByRole('button', { name: 'Verify chain' }).click();
  await owner.getByTestId('verify-result').filter({ hasText: /^Chain intact: \d+ entries\.$/ }).waitFor();
  const intact = Number((await owner.getByTestId('verify-result').textContent()).match(/\d+/)[0]);
  assert.ok(intact >= wholeEntries.length, `checked ${intact} entries, exported ${wholeEntries.length}`);

  // On a phone: entries as cards, nothing wider than the screen, details open in place.
  const { page: phone } = await env.page(PHONE);
  await signIn(phone, 'owner@demo.test');
  await phone.goto(`/audit?action=case.&from=${today()}&to=${today()}`);
  await phone.getByTestId('audit-count').waitFor();
  await fitsWidth(phone);
  await phone.locator('summary', { hasText: 'Filters · 3 active' }).waitFor();
  await screenshot(phone, 'audit-owner-390');
  const card = rows(phone).first();
  await card.getByRole('button', { name: /^Details of entry/ }).click();
  await card.getByText('Previous hash').waitFor();
  await fitsWidth(phone);
  await screenshot(phone, 'audit-details-390', card);
  env.assertNoProblems();
});

test('the auditor reads the log too; a doctor is told it is not for their role', async () => {
  const { page: auditor } = await env.page(PHONE);
  await signIn(auditor, 'auditor@demo.test');
  // The auditor's start page is the log.
  await auditor.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  await auditor.getByTestId('audit-count').waitFor();
  // Members are for owners: people show by id, the auditor by name.
  await auditor.getByTestId('audit-count').getByText(/People are shown by their user id/).waitFor();
  // On a phone the filters are folded under a summary.
  await screenshot(auditor, 'audit-auditor-390');
  await auditor.locator('summary', { hasText: 'Filters' }).click();
  await auditor.getByLabel('Action', { exact: true }).selectOption({ label: 'Use of the audit log' });
  const ownRead = async () => (await rows(auditor).filter({ hasText: 'Aldo Auditor (you)' }).count()) > 0;
  await applyUntil(auditor, ownRead, 'the auditor’s own read');
  assert.equal(await rows(auditor).filter({ hasText: 'Olga Owner' }).count(), 0, 'no names of others');
  assert.ok((await all(auditor, '.audit-who')).some((w) => /^User [0-9a-f]{8}…$/.test(w)), 'the owner shows by id');
  await auditor.getByRole('button', { name: 'Verify chain' }).click();
  await auditor.getByTestId('verify-result').filter({ hasText: /^Chain intact: \d+ entries\.$/ }).waitFor();
  await auditor.locator('summary', { hasText: 'Filters · 1 active' }).waitFor();
  await fitsWidth(auditor);

  const { page: doctor } = await env.page();
  let asked = false;
  doctor.on('request', (r) => {
    if (r.url().includes('/api/v1/audit')) asked = true;
  });
  await signIn(doctor, 'doctor@demo.test');
  assert.equal(await doctor.getByRole('link', { name: 'Audit log' }).count(), 0, 'no nav link for a doctor');
  await doctor.goto('/audit');
  await doctor.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  await doctor.getByRole('alert').filter({ hasText: 'The audit log is not available to your role' }).waitFor();
  assert.equal(await rows(doctor).count(), 0);
  assert.equal(asked, false, 'the page did not ask for the log');
  env.assertNoProblems();
});
