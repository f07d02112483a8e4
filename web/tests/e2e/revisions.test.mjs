// The Digital Rx is numbered by revision, 1, 2, 3… (the nth change of the case's Rx), at both
// widths: a chat message between two saves does not make the number jump, and the history names
// the revisions.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, openCase, PHONE, setup, signIn } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

const revision = async (page) => {
  const text = await page.getByTestId('rx-revision').textContent();
  const m = /^Revision (\d+)/.exec(text.trim());
  assert.ok(m, `no revision in "${text}"`);
  return Number(m[1]);
};

for (const [width, viewport, label, shadeTo] of [
  ['1280', DESKTOP, 'Crown 11 — shade A2', ['A3', 'B1']],
  ['390', PHONE, 'Bridge 34–36', ['A1', 'C2']],
]) {
  test(`Rx revisions count changes, not events (${width})`, async () => {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    await openCase(page, label);
    const rxTab = page.getByRole('tab', { name: 'Digital Rx' });
    const chatTab = page.getByRole('tab', { name: 'Chat' });
    await rxTab.click();
    await page.getByTestId('rx').waitFor();
    const start = await revision(page);

    const save = async (value) => {
      const editor = page.getByTestId('tooth-editor');
      if (!(await editor.getByText('Tooth 11', { exact: true }).count())) await page.getByRole('button', { name: /^Tooth 11\b/ }).click();
      await editor.getByText('Tooth 11', { exact: true }).waitFor();
      await page.getByTestId('tooth-editor').getByLabel('Shade').selectOption(value);
      await page.getByRole('button', { name: 'Save Rx' }).click();
      await page.getByText('Saved.').waitFor();
    };
    await save(shadeTo[0]);
    await page.waitForFunction((n) => document.querySelector('[data-testid="rx-revision"]')?.textContent.startsWith(`Revision ${n}`), start + 1);

    // Something else happens in the case (a chat message: another seq, no Rx change)…
    if (viewport === PHONE) await chatTab.click();
    const box = page.getByLabel('Message', { exact: true });
    await box.fill(`between two saves ${width}`);
    await box.press('Enter');
    await page.locator('.msg:not(.msg-pending)', { hasText: `between two saves ${width}` }).waitFor();
    if (viewport === PHONE) await rxTab.click();

    // …and the next save is the next revision.
    await save(shadeTo[1]);
    await page.waitForFunction((n) => document.querySelector('[data-testid="rx-revision"]')?.textContent.startsWith(`Revision ${n}`), start + 2);

    // On a phone, where a tooth of the chart is narrower than a finger, the full-width tooth list
    // chooses the same tooth.
    if (viewport === PHONE) {
      const picker = page.getByLabel('Tooth', { exact: true });
      const box = await picker.boundingBox();
      assert.ok(box.height >= 44 && box.width >= 44, `tooth list ${box.width}x${box.height}`);
      await picker.selectOption('21');
      await page.getByTestId('tooth-editor').getByText('Tooth 21', { exact: true }).waitFor();
      await picker.selectOption('11');
      await page.getByTestId('tooth-editor').getByText('Tooth 11', { exact: true }).waitFor();
    } else {
      assert.equal(await page.getByLabel('Tooth', { exact: true }).isVisible(), false);
    }

    // The history names the revisions it made, newest first.
    await page.getByRole('button', { name: 'History' }).click();
    const history = page.getByTestId('rx-history');
    await history.getByText(`revision ${start + 2}`).first().waitFor();
    await history.getByText(`revision ${start + 1}`).first().waitFor();
    env.assertNoProblems();
  });
}
