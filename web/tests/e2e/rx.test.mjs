// The Digital Rx: the FDI chart, field-by-field versions, the conflict message when someone
// changed a field first (and re-applying one's own value), lab proposals, and field history.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

async function openRx(page) {
  await openCase(page, CASE);
  await page.getByRole('tab', { name: 'Digital Rx' }).click();
  await page.getByTestId('rx').waitFor();
}

async function selectTooth(page, tooth) {
  await page.getByRole('button', { name: new RegExp(`^Tooth ${tooth}\\b`) }).click();
  await page.getByTestId('tooth-editor').getByText(`Tooth ${tooth}`, { exact: true }).waitFor();
}

const shade = (page) => page.getByTestId('tooth-editor').getByLabel('Shade');

test('an Rx conflict shows the current value and lets the doctor re-apply theirs', async () => {
  // The same doctor on two devices (two sessions).
  const { page: desk } = await env.page();
  const { page: phone } = await env.page(PHONE);
  await signIn(desk, 'doctor@demo.test');
  await signIn(phone, 'doctor@demo.test');
  await openRx(desk);
  await openRx(phone);
  await selectTooth(desk, 11);
  await selectTooth(phone, 11);
  assert.equal(await shade(desk).inputValue(), 'A2');

  // The phone starts changing the shade (based on the version it has)…
  await shade(phone).selectOption('A1');
  await phone.getByText('1 unsaved change').waitFor();
  await screenshot(phone, 'rx-chart-390', phone.getByTestId('tooth-editor'));

  // …while the desk saves another shade first.
  await shade(desk).selectOption('A3');
  await desk.getByRole('button', { name: 'Save Rx' }).click();
  await desk.getByText('Saved.').waitFor();

  // The phone is told, before even saving, that the field changed meanwhile.
  await phone.getByText(/changed by .* meanwhile: now A3/i).waitFor();

  // Saving anyway is refused: nothing applied, the current value shown.
  await phone.getByRole('button', { name: 'Save Rx' }).click();
  const conflict = phone.getByTestId('rx-conflict');
  await conflict.waitFor();
  assert.equal(await conflict.getByTestId('conflict-current').textContent(), 'A3');
  assert.match(await conflict.textContent(), /Tooth 11 · shade/);
  await screenshot(phone, 'rx-conflict-390', conflict);
  assert.equal(await shade(desk).inputValue(), 'A3');

  // Re-applying the phone's value, now based on the current version, succeeds everywhere.
  await conflict.getByRole('button', { name: 'Re-apply mine' }).click();
  await phone.getByText('Saved.').waitFor();
  await desk.waitForFunction(() => {
    const el = document.querySelector('select[name="teeth.11.shade"]');
    return el && el.value === 'A1';
  });
  assert.equal(await phone.getByTestId('rx-conflict').count(), 0);
  env.assertNoProblems();
});

test('the lab proposes a change, its stale proposal conflicts, the doctor accepts a fresh one', async () => {
  const { page: doctor } = await env.page();
  const { page: tech } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  await openRx(doctor);
  await openRx(tech);
  await selectTooth(tech, 12);
  await selectTooth(doctor, 12);

  // The technician drafts a veneer on 12; meanwhile the doctor prescribes a crown there.
  await tech.getByTestId('tooth-editor').getByLabel('Restoration').selectOption('veneer');
  await doctor.getByTestId('tooth-editor').getByLabel('Restoration').selectOption('crown');
  await doctor.getByRole('button', { name: 'Save Rx' }).click();
  await doctor.getByText('Saved.').waitFor();

  // The lab's proposal was based on the old version: refused with the doctor's value shown.
  await tech.getByRole('button', { name: 'Propose changes' }).click();
  const conflict = tech.getByTestId('rx-conflict');
  await conflict.waitFor();
  assert.equal(await conflict.getByTestId('conflict-current').textContent(), 'Crown');

  // Re-applied on the current version, the proposal reaches the doctor, who accepts it.
  await conflict.getByRole('button', { name: 'Re-apply mine' }).click();
  await tech.getByText('Proposal sent to the doctor.').waitFor();
  const proposal = doctor.locator('.proposal-open');
  await proposal.getByText('Tooth 12 · restoration').waitFor();
  await screenshot(doctor, 'rx-proposal-desktop', proposal);
  await proposal.getByRole('button', { name: 'Accept' }).click();
  await tech.waitForFunction(() => document.querySelector('select[name="teeth.12.restoration"]')?.value === 'veneer');

  // The field's history lists every step, for the selected tooth.
  await doctor.getByRole('button', { name: 'History' }).click();
  const history = doctor.getByTestId('rx-history');
  await history.getByRole('heading', { name: 'History of tooth 12' }).waitFor();
  await history.getByText(/accepted a proposal: Tooth 12 · restoration → Veneer/).waitFor();
  await history.getByText(/proposed Tooth 12 · restoration → Veneer/).waitFor();
  await history.getByText(/changed Tooth 12 · restoration → Crown/).waitFor();
  env.assertNoProblems();
});
