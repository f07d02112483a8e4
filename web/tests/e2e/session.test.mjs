// Sessions: an expired access token is refreshed without the user noticing; tabs that refresh at
// the same moment never present the same refresh token twice (which would revoke the session);
// ending a session elsewhere signs that device out live; "log out every device".

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCase, screenshot, setup, signIn, waitLive } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

test('an expired access token is refreshed transparently, also by several tabs at once', async () => {
  const { page, context } = await env.page();
  await signIn(page, 'doctor@demo.test');
  await page.getByRole('heading', { name: 'Cases' }).waitFor();
  const tabs = [page, await context.newPage(), await context.newPage()];

  for (let round = 0; round < 3; round++) {
    // The access cookie lives as long as the token: dropping it is what expiry looks like.
    await context.clearCookies({ name: '__Host-articula_at' });
    // Every tab starts at once; each needs a refresh. Serialised across tabs (Web Lock), every
    // request carries the newest refresh token; a reuse would revoke the session.
    await Promise.all(tabs.map((t) => t.goto('/cases')));
    for (const t of tabs) {
      await t.getByRole('heading', { name: 'Cases' }).waitFor();
      await t.getByRole('link', { name: 'Bridge 34–36' }).waitFor();
    }
  }
  // Still the same, live session: the socket is authenticated and the API answers.
  await waitLive(page);
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  assert.equal(me, 200);
  env.assertNoProblems();
});

test('ending a session from another device signs it out live; log out every device', async () => {
  const { page: phone } = await env.page();
  const { page: desk } = await env.page();
  await signIn(phone, 'doctor2@demo.test');
  await openCase(phone, 'Implant crown 46');
  await signIn(desk, 'doctor2@demo.test');

  await desk.getByRole('link', { name: 'Account' }).click();
  await desk.getByRole('heading', { name: 'Where you are signed in' }).waitFor();
  const others = desk.locator('.session:not([data-current])');
  await others.first().waitFor();
  assert.ok((await others.count()) >= 1);
  await screenshot(desk, 'account-sessions-desktop');

  // Ending the other session closes its socket at once: that page signs out and says why.
  await others.first().getByRole('button', { name: 'End session' }).click();
  await phone.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  await phone.getByText(/session was ended/).waitFor();
  await desk.locator('.session:not([data-current])').first().waitFor({ state: 'detached' });

  // Log out every device, this one included.
  await signIn(phone, 'doctor2@demo.test');
  await desk.getByRole('button', { name: 'Log out every device…' }).click();
  await desk.getByRole('button', { name: 'Yes, log out every device' }).click();
  await desk.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  await phone.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  const status = await phone.evaluate(async () => (await fetch('/api/v1/me')).status);
  assert.equal(status, 401);
  env.assertNoProblems();
});
