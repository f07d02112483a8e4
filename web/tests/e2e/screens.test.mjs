// The main screens at both widths (desktop 1280 px and a 390 px phone), for the screenshots the
// README links. Each screen must show what it is for before it is pictured: the phone layout must
// not hide the thing a person came for.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

let env;

// Pictured by the tests of the flows themselves, in a more telling state (a conflict pending, a
// session list with two devices…); this file pictures each of the other screens and widths.
const PICTURED_ELSEWHERE = new Set([
  'sign-in-clinic-desktop',
  'sign-in-lab-390',
  'case-list-390',
  'rx-chart-390',
  'account-sessions-desktop',
  'board-lab-desktop',
  'governance-owner-desktop',
]);

async function picture(page, name, show) {
  if (!PICTURED_ELSEWHERE.has(name)) await screenshot(page, name, show);
}

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

/** Nothing of the page sticks out sideways (no horizontal scrolling on a phone). */
async function fitsWidth(page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `the page is ${scroll} px wide in a ${width} px window`);
}

for (const [size, viewport] of [['desktop', DESKTOP], ['390', PHONE]]) {
  test(`the main screens at ${size}`, async () => {
    const { page: signInPage } = await env.page(viewport);
    for (const portal of ['clinic', 'lab']) {
      await signInPage.goto(`/${portal}/sign-in`);
      await signInPage.getByRole('heading', { name: portal === 'clinic' ? 'Clinic portal' : 'Lab portal' }).waitFor();
      await signInPage.getByLabel('E-mail').waitFor();
      await fitsWidth(signInPage);
      await picture(signInPage, `sign-in-${portal}-${size}`);
    }

    const { page: doctor } = await env.page(viewport);
    await signIn(doctor, 'doctor@demo.test');
    await doctor.getByRole('heading', { name: 'Cases' }).waitFor();
    await doctor.getByRole('link', { name: 'Crown 11 — shade A2' }).waitFor();
    await fitsWidth(doctor);
    await picture(doctor, `case-list-${size}`);

    await openCase(doctor, 'Crown 11 — shade A2');
    await doctor.getByRole('tab', { name: 'Digital Rx' }).click();
    await doctor.getByTestId('rx').waitFor();
    await doctor.getByRole('button', { name: /^Tooth 11\b/ }).click();
    await doctor.getByTestId('tooth-editor').getByText('Tooth 11', { exact: true }).waitFor();
    await fitsWidth(doctor);
    await picture(doctor, `rx-chart-${size}`, doctor.getByTestId('tooth-editor'));

    await doctor.goto('/account');
    await doctor.getByRole('heading', { name: 'Where you are signed in' }).waitFor();
    await doctor.locator('.session[data-current]').waitFor();
    await fitsWidth(doctor);
    await picture(doctor, `account-sessions-${size}`);

    const { page: tech } = await env.page(viewport);
    await signIn(tech, 'tech@demo.test');
    await tech.getByRole('heading', { name: 'Lab board' }).waitFor();
    await tech.locator('[data-column="in_production"] .card', { hasText: 'Implant crown 46' }).waitFor();
    await fitsWidth(tech);
    await picture(tech, `board-lab-${size}`);

    const { page: owner } = await env.page(viewport);
    await signIn(owner, 'owner@demo.test');
    await owner.getByRole('heading', { name: 'Your organisation' }).waitFor();
    await fitsWidth(owner);
    await picture(owner, `governance-owner-${size}`);
    env.assertNoProblems();
  });
}
