// A phone loses its network in the middle of a conversation. When it comes back it shows exactly
// the messages it missed (resume with `since`), and what it sent while offline reaches the others
// exactly once (the same command id is resent; the server dedupes).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCase, PHONE, setup, signIn, waitLive } from './harness.mjs';

const CASE = 'Bridge 34–36';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

test('a network drop and reconnect shows the missed messages, nothing lost or doubled', async () => {
  const { page: doctor, context: doctorContext } = await env.page(PHONE);
  const { page: tech } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  await openCase(doctor, CASE);
  await openCase(tech, CASE);

  // The phone goes offline: the app says so.
  await doctorContext.setOffline(true);
  await doctor.getByTestId('offline-banner').waitFor();
  await doctor.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor();

  // Meanwhile the lab writes twice…
  for (const text of ['Margin on 34 is unclear on the scan.', 'Can you send a new scan of 34?']) {
    await tech.getByLabel('Message', { exact: true }).fill(text);
    await tech.getByLabel('Message', { exact: true }).press('Enter');
    await tech.locator('.msg:not([data-pending])', { hasText: text }).waitFor();
  }
  // …and the doctor answers while still offline: kept, marked as waiting.
  await doctor.getByLabel('Message', { exact: true }).fill('Sending a new scan this afternoon.');
  await doctor.getByLabel('Message', { exact: true }).press('Enter');
  await doctor.locator('[data-pending]', { hasText: 'Sending a new scan this afternoon.' }).waitFor();
  await doctor.getByTestId('offline-banner').filter({ hasText: '1 change will be sent' }).waitFor();
  assert.equal(await doctor.locator('.msg', { hasText: 'Margin on 34 is unclear' }).count(), 0);

  // Back online: the socket reconnects and resumes.
  await doctorContext.setOffline(false);
  await waitLive(doctor);
  await doctor.locator('.msg', { hasText: 'Margin on 34 is unclear on the scan.' }).waitFor();
  await doctor.locator('.msg', { hasText: 'Can you send a new scan of 34?' }).waitFor();
  await doctor.locator('.msg:not([data-pending])', { hasText: 'Sending a new scan this afternoon.' }).waitFor();
  await tech.locator('.msg', { hasText: 'Sending a new scan this afternoon.' }).waitFor();
  await doctor.getByTestId('offline-banner').waitFor({ state: 'detached' });

  // In order, each exactly once, on both sides.
  for (const page of [doctor, tech]) {
    const texts = await page.locator('.msg .msg-text').allTextContents();
    const tail = texts.slice(-3);
    assert.deepEqual(tail, [
      'Margin on 34 is unclear on the scan.',
      'Can you send a new scan of 34?',
      'Sending a new scan this afternoon.',
    ]);
    assert.equal(await page.locator('[data-pending]').count(), 0);
  }
  env.assertNoProblems();
});

test('a socket that drops before the ack: the message is resent with the same id and shows once', async () => {
  const { page: doctor, context } = await env.page();
  const { page: tech } = await env.page(PHONE);
  // Sit between the page and the server, like a flaky network: drop the answers to the next
  // post_message (its ack and its event), then cut the connection.
  let trap = false;
  let postId = null;
  const sockets = [];
  const posted = [];
  await context.routeWebSocket(/\/api\/v1\/ws$/, (page) => {
    const server = page.connectToServer();
    sockets.push(page);
    page.onMessage((m) => {
      const f = JSON.parse(String(m));
      if (f.type === 'post_message') posted.push(f.id);
      if (trap && f.type === 'post_message') postId = f.id;
      server.send(m);
    });
    server.onMessage((m) => {
      const f = JSON.parse(String(m));
      if (trap && postId && ((f.type === 'ack' && f.data.id === postId) || (f.type === 'event' && f.data.kind === 'message_posted'))) {
        trap = false;
        page.close({ code: 4002, reason: 'network cut by the test' });
        return;
      }
      page.send(m);
    });
  });
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  await openCase(doctor, CASE);
  await openCase(tech, CASE);

  trap = true;
  await doctor.getByLabel('Message', { exact: true }).fill('Exactly once, please.');
  await doctor.getByLabel('Message', { exact: true }).press('Enter');

  // The server committed it (the lab sees it) but the doctor never got the ack…
  await tech.locator('.msg', { hasText: 'Exactly once, please.' }).waitFor();
  // …so after reconnecting the doctor's client resends the same command id; the server answers with
  // the original ack and creates nothing new.
  await doctor.locator('.msg:not([data-pending])', { hasText: 'Exactly once, please.' }).waitFor();
  await waitLive(doctor);
  assert.ok(sockets.length >= 2, 'the client opened a new socket');
  assert.equal(posted.length, 2, 'sent once, resent once');
  assert.equal(posted[0], posted[1], 'the resend carries the same command id');
  assert.equal(await doctor.locator('[data-pending]').count(), 0);
  assert.equal(await doctor.locator('.msg', { hasText: 'Exactly once, please.' }).count(), 1);
  assert.equal(await tech.locator('.msg', { hasText: 'Exactly once, please.' }).count(), 1);
  env.assertNoProblems();
});

test('a reload resumes the case with everything in it', async () => {
  const { page: doctor } = await env.page();
  await signIn(doctor, 'doctor@demo.test');
  await openCase(doctor, CASE);
  await doctor.locator('.msg', { hasText: 'Sending a new scan this afternoon.' }).waitFor();
  await doctor.reload();
  await waitLive(doctor);
  await doctor.locator('.msg', { hasText: 'Sending a new scan this afternoon.' }).waitFor();
  assert.equal(await doctor.locator('.msg', { hasText: 'Sending a new scan this afternoon.' }).count(), 1);
  env.assertNoProblems();
});
