// A doctor (clinic portal) and a lab technician (lab portal), each in their own browser context,
// chat live in a case: messages, typing, presence, read receipts, edit and delete.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

test('doctor and lab technician chat live in two browser contexts', async () => {
  const { page: doctor } = await env.page();
  const { page: tech } = await env.page(PHONE);
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  await openCase(doctor, CASE);
  await openCase(tech, CASE);

  // The demo conversation is there for both.
  await doctor.getByText('Received. The date works; design by Thursday.').waitFor();
  await tech.getByText('Scan attached tomorrow morning').waitFor();

  // Presence: each sees the other in the room.
  await doctor.getByTestId('presence').waitFor();
  await tech.getByTestId('presence').filter({ hasText: 'Dr. Ana Ortiz' }).waitFor();

  // The doctor types: the technician sees it, then the message.
  const box = doctor.getByLabel('Message', { exact: true });
  await box.click();
  await box.pressSequentially('Please keep the contact on 12 light', { delay: 5 });
  await tech.getByText(/Dr\. Ana Ortiz is typing/).waitFor();
  await box.press('Enter');
  const sent = tech.locator('.msg', { hasText: 'Please keep the contact on 12 light' });
  await sent.waitFor();

  // The technician answers; the doctor sees it without reloading.
  const techBox = tech.getByLabel('Message', { exact: true });
  await techBox.fill('Noted, light contact on 12.');
  await tech.getByRole('button', { name: 'Send' }).click();
  await doctor.locator('.msg', { hasText: 'Noted, light contact on 12.' }).waitFor();

  // Read receipt: the technician has the room open, so the doctor's last message is seen.
  await doctor.getByTestId('receipt').filter({ hasText: 'Seen by' }).first().waitFor();

  // Edit and delete one's own message: the other side follows live.
  const id = await doctor.locator('.msg-own', { hasText: 'Please keep the contact on 12 light' }).getAttribute('data-message-id');
  const mine = doctor.locator(`[data-message-id="${id}"]`);
  await mine.getByRole('button', { name: 'Message actions' }).click();
  await doctor.getByRole('menuitem', { name: 'Edit' }).click();
  await doctor.getByLabel('Edit message').fill('Please keep the contact on 12 very light');
  await mine.getByRole('button', { name: 'Save', exact: true }).click();
  await tech.locator('.msg', { hasText: 'Please keep the contact on 12 very light' }).filter({ hasText: 'edited' }).waitFor();

  const noted = tech.locator('.msg-own', { hasText: 'Noted, light contact on 12.' });
  await noted.getByRole('button', { name: 'Message actions' }).click();
  await tech.getByRole('menuitem', { name: 'Delete' }).click();
  await noted.getByRole('button', { name: 'Delete' }).click(); // confirm
  await doctor.locator('.msg-deleted').filter({ hasText: 'Message deleted' }).waitFor();
  assert.equal(await doctor.locator('.msg', { hasText: 'Noted, light contact on 12.' }).count(), 0);

  // Each message exactly once on both sides.
  assert.equal(await doctor.locator('.msg', { hasText: 'very light' }).count(), 1);
  assert.equal(await tech.locator('.msg', { hasText: 'very light' }).count(), 1);

  await screenshot(doctor, 'case-room-chat-desktop');
  await screenshot(tech, 'case-room-chat-390');
  env.assertNoProblems();
});

test('the case list and the lab board mark new activity live', async () => {
  const { page: tech } = await env.page();
  const { page: doctor } = await env.page();
  await signIn(tech, 'tech@demo.test'); // lab staff start on their board
  await tech.getByRole('heading', { name: 'Lab board' }).waitFor();
  const card = tech.locator(`.card:has(a:text-is("${CASE}"))`);
  await card.waitFor();

  await signIn(doctor, 'doctor@demo.test');
  await openCase(doctor, CASE);
  await doctor.getByLabel('Message', { exact: true }).fill('New scan is in the system.');
  await doctor.getByLabel('Message', { exact: true }).press('Enter');
  // A message counts as unread on the card (the doctor's message, live).
  await card.getByTestId('unread').filter({ hasText: '1' }).waitFor();
  env.assertNoProblems();
});

test('a message the server refuses is not sent again, and its author is told why', async () => {
  const { page } = await env.page();
  // Count what the client really sends.
  const sent = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => typeof f.payload === 'string' && sent.push(f.payload)));
  await signIn(page, 'doctor@demo.test');
  await openCase(page, CASE);
  const box = page.getByLabel('Message', { exact: true });

  // Text that cannot be stored (a NUL, pasted in): refused before it gets a seq.
  await box.fill('before\u0000after');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('.msg-failed', { hasText: 'control character U+0000' }).waitFor();

  // A message the database refuses (a trigger stands in for any constraint): `not_storable`.
  const db = path.join(env.server.dataDir, 'articula.db');
  execFileSync('python3', [
    '-c',
    'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); ' +
      'c.execute("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.data LIKE \'%POISON%\' BEGIN SELECT RAISE(ABORT, \'poisoned\'); END"); c.commit()',
    db,
  ]);
  await box.fill('POISON pill');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('.msg-failed', { hasText: 'could not store' }).waitFor();

  // Both were sent once: a refusal that a retry cannot fix is not retried (a retryable error
  // would keep the message pending, never failed).
  const posts = (needle) => sent.filter((p) => p.includes('"post_message"') && p.includes(needle)).length;
  assert.equal(posts('before\\u0000after'), 1);
  assert.equal(posts('POISON pill'), 1);
  // A refusal offers no retry (it would be refused again), but hands the text back to be edited.
  await screenshot(page, 'chat-refused-desktop');
  const poisoned = page.locator('.msg-failed', { hasText: 'could not store' });
  assert.equal(await poisoned.getByRole('button', { name: 'Retry' }).count(), 0);
  await poisoned.getByRole('button', { name: 'Edit' }).click();
  await page.waitForFunction((el) => el.value === 'POISON pill', await box.elementHandle());
  assert.equal(await poisoned.count(), 0);
  // The room still works.
  await box.fill('After the refusals');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('.msg:not(.msg-pending)', { hasText: 'After the refusals' }).waitFor();
  env.assertNoProblems();
});

test('bidirectional controls in what people typed cannot reorder what follows', async () => {
  const { page } = await env.page();
  await signIn(page, 'doctor@demo.test');
  await openCase(page, CASE);
  // Chat and reasons keep bidirectional controls (a right-to-left override here, never closed):
  // they must reorder only their own text, not the sentence around them or what comes after.
  const reason = 'waiting \u202Efor the new scan';
  await page.getByTestId('status-select').selectOption('on_hold');
  await page.getByLabel('Reason').fill(reason);
  await page.getByRole('button', { name: 'Change status' }).click();
  const note = page.locator('.note', { hasText: 'for the new scan' });
  await note.waitFor();
  const box = page.getByLabel('Message', { exact: true });
  await box.fill('see \u202Ethis');
  await box.press('Enter');
  await box.fill('Plain words after it');
  await box.press('Enter');
  const after = page.locator('.msg:not(.msg-pending)', { hasText: 'Plain words after it' });
  await after.waitFor();

  const layout = await page.evaluate(() => {
    /** The on-screen boxes (one a line) of `needle` within `root`'s text. */
    function boxOf(root, needle) {
      const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        const at = n.data.indexOf(needle);
        if (at >= 0) {
          const range = document.createRange();
          range.setStart(n, at);
          range.setEnd(n, at + needle.length);
          return [...range.getClientRects()].map((r) => ({ left: r.left, right: r.right, top: r.top }));
        }
      }
      return null;
    }
    const note = [...document.querySelectorAll('.note')].find((li) => li.textContent.includes('for the new scan'));
    const reason = boxOf(note, 'for the new scan');
    const close = boxOf(note, '\u201D')[0];
    const msg = [...document.querySelectorAll('.msg')].find((li) => li.textContent.includes('Plain words after it'));
    const words = ['Plain', 'words', 'after', 'it'].map((w) => boxOf(msg.querySelector('.msg-text'), w)[0].left);
    const bodies = [...document.querySelectorAll('.msg:not(.msg-deleted) .msg-text')].map((el) => [el.dir, getComputedStyle(el).unicodeBidi]);
    return { reason, close, words, bodies };
  });
  // The closing quote still follows the reason (an override leaking out of it would put the
  // quote and the rest of the sentence before its words), and the next message reads left to right.
  // The reason may wrap: on the line where the quote closes, the quote is right of the reason.
  const { close } = layout;
  const onItsLine = layout.reason.filter((r) => Math.abs(r.top - close.top) < 4);
  assert.ok(onItsLine.length > 0, `the quote is not on the reason's line: ${JSON.stringify(layout)}`);
  assert.ok(onItsLine.every((r) => close.left >= r.right - 1), `the sentence was reordered: ${JSON.stringify(layout)}`);
  assert.deepEqual([...layout.words].sort((a, b) => a - b), layout.words, `words out of order: ${layout.words}`);
  // Every message body is its own isolate, its direction taken from its own text.
  for (const [dir, bidi] of layout.bodies) {
    assert.equal(dir, 'auto');
    assert.ok(['isolate', 'plaintext'].includes(bidi), bidi);
  }
  env.assertNoProblems();
});
