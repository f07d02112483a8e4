// The doctor says no: a design rejected with a comment sends the case back to design, live for the
// lab; a lab proposal declined leaves the Rx as it was. A rejection without a comment is not sent.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCase, PHONE, setup, signIn } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

// The demo's lab asked for approval of the bridge's first design.
const CASE = 'Bridge 34–36';

test('a design rejected with a comment goes back to the lab, live', async () => {
  const { page: doctor } = await env.page(PHONE);
  const { page: tech } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  await openCase(doctor, CASE);
  await openCase(tech, CASE);
  await doctor.locator('.room-head [data-status=awaiting_approval]').waitFor();

  await doctor.getByRole('tab', { name: /Approvals/ }).click();
  const item = doctor.locator('.approval-pending');
  await item.getByText('Design v1 for your approval').waitFor();
  await item.getByRole('button', { name: 'Reject…' }).click();
  // Without a comment the rejection cannot be sent.
  const send = item.getByRole('button', { name: 'Reject with comment' });
  assert.equal(await send.isDisabled(), true);
  await item.getByLabel('What should the lab change? (required)').fill('Pontic too wide, please narrow it by 0.5 mm.');
  await send.click();

  // Both see the case back in design, and the lab reads the doctor's reason.
  await doctor.locator('.room-head [data-status=in_design]').waitFor();
  await tech.locator('.room-head [data-status=in_design]').waitFor();
  await tech.getByRole('tab', { name: /Approvals/ }).click();
  await tech
    .locator('.approval-rejected')
    .getByText(/Rejected by Dr\. Ana Ortiz.*Pontic too wide, please narrow it by 0\.5 mm\./)
    .waitFor();
  env.assertNoProblems();
});

test('a declined lab proposal leaves the Rx unchanged', async () => {
  const { page: doctor } = await env.page();
  const { page: tech } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  for (const page of [doctor, tech]) {
    await openCase(page, CASE);
    await page.getByRole('tab', { name: 'Digital Rx' }).click();
    await page.getByTestId('rx').waitFor();
    await page.getByRole('button', { name: /^Tooth 35\b/ }).click();
    await page.getByTestId('tooth-editor').getByText('Tooth 35', { exact: true }).waitFor();
  }
  const shade = (page) => page.getByTestId('tooth-editor').getByLabel('Shade');
  assert.equal(await shade(doctor).inputValue(), '3M2');

  // The lab proposes a lighter shade on the pontic; the doctor declines it.
  await shade(tech).selectOption('2M2');
  await tech.getByRole('button', { name: 'Propose changes' }).click();
  await tech.getByText('Proposal sent to the doctor.').waitFor();
  const proposal = doctor.locator('.proposal-open');
  await proposal.getByText('Tooth 35 · shade').waitFor();
  await proposal.getByLabel('Comment (optional)').fill('Keep 3M2 to match 34 and 36.');
  await proposal.getByRole('button', { name: 'Decline' }).click();

  // No proposal is waiting any more; the decided one says so, with the doctor's comment.
  await doctor.getByText('No proposal is waiting.').waitFor();
  await tech.getByText('No proposal is waiting.').waitFor();
  await tech.getByText(/Decided proposals \(1\)/).click();
  const decided = tech.locator('.proposal-declined');
  await decided.getByText('Doctor: “Keep 3M2 to match 34 and 36.”').waitFor();
  // The Rx is as the doctor prescribed it, on both screens.
  assert.equal(await shade(doctor).inputValue(), '3M2');
  await openCase(tech, CASE);
  await tech.getByRole('tab', { name: 'Digital Rx' }).click();
  await tech.getByTestId('rx').waitFor();
  await tech.getByRole('button', { name: /^Tooth 35\b/ }).click();
  await tech.getByTestId('tooth-editor').getByText('Tooth 35', { exact: true }).waitFor();
  assert.equal(await shade(tech).inputValue(), '3M2');
  env.assertNoProblems();
});
