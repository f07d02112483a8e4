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

test('signing out when the access cookie has lapsed still ends the session', async () => {
  const { page, context } = await env.page();
  await signIn(page, 'doctor@demo.test');
  await page.getByRole('heading', { name: 'Cases' }).waitFor();
  const before = await context.cookies();
  // The access token expired while the page sat open: the first sign-out request is refused.
  await context.clearCookies({ name: '__Host-articula_at' });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  await page.reload();
  await page.getByRole('heading', { name: 'Clinic portal' }).waitFor();
  assert.deepEqual((await context.cookies()).map((c) => c.name), []);
  // The session is over on the server: its refresh token, put back, renews nothing.
  await context.addCookies(before.filter((c) => c.name !== '__Host-articula_at'));
  const status = await page.evaluate(async () => {
    const csrf = document.cookie.match(/__Host-articula_csrf=([^;]+)/)?.[1] ?? '';
    return (await fetch('/api/v1/auth/refresh', { method: 'POST', headers: { 'X-CSRF-Token': csrf } })).status;
  });
  assert.equal(status, 401);
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
