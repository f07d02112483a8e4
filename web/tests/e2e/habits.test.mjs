// Chat habits people bring from WhatsApp and Slack, at both widths: unread counts (per case, in
// the header and the tab title, live, from the server's read marks) and the "new messages"
// divider; the typing line goes when the message arrives; day separators and full dates;
// replies; @mentions with autocomplete; a new file straight from the paperclip; the message box
// two key presses away; per-message actions in a menu with 44-px targets.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, makePng, openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';
const OTHER = 'Bridge 34–36';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

const contexts = [];
/** Closes the browser contexts of the earlier tests. */
async function closeAll() {
  for (const c of contexts.splice(0)) await c.close();
}
async function page(viewport) {
  const p = await env.page(viewport);
  contexts.push(p.context);
  return p;
}

/** Waits until the server has the read mark of the case on screen (no unread entry for it). */
async function readOnServer(page) {
  const id = new URL(page.url()).pathname.split('/').pop();
  await page.waitForFunction(async (caseId) => {
    const res = await fetch('/api/v1/unread', { credentials: 'same-origin' });
    const { cases } = await res.json();
    return !cases.some((c) => c.case_id === caseId);
  }, id, { polling: 200 });
}

/** Waits until the element's bounding box is inside the window. */
async function inView(page, locator) {
  const box = await locator.boundingBox();
  const size = page.viewportSize();
  assert.ok(box, 'not rendered');
  assert.ok(box.y >= 0 && box.y + box.height <= size.height + 1 && box.x >= 0 && box.x + box.width <= size.width + 1, `outside the window: ${JSON.stringify(box)} in ${JSON.stringify(size)}`);
}

for (const [width, viewport] of [
  ['1280', DESKTOP],
  ['390', PHONE],
]) {
  test(`unread counts per case, in the header and the tab title, and the new-messages divider (${width})`, async () => {
    // Nobody else has the case open as the technician (another tab of theirs would read it).
    await closeAll();
    const { page: tech } = await page(viewport);
    const { page: doctor } = await page(DESKTOP);
    await signIn(tech, 'tech@demo.test');
    await signIn(doctor, 'doctor@demo.test');
    // The technician reads the case first (a read mark), then goes to another case room.
    await openCase(tech, CASE);
    await tech.getByText('Scan attached tomorrow morning').waitFor();
    await readOnServer(tech);
    await openCase(tech, OTHER);
    await tech.waitForFunction(() => document.title === 'Articula');

    await openCase(doctor, CASE);
    const box = doctor.getByLabel('Message', { exact: true });
    const words = [`first ${width}`, `second ${width}`, `third ${width}`];
    for (const w of words) {
      await box.fill(`Unread ${w}`);
      await box.press('Enter');
      await doctor.locator('.msg:not(.msg-pending)', { hasText: `Unread ${w}` }).waitFor();
    }
    // Live, while the technician is in another case: the header and the tab title count them.
    await tech.waitForFunction(() => document.title === '(3) Articula');
    assert.equal(await tech.getByTestId('unread-total').getAttribute('data-count'), '3');
    // The count fits in the header: every main link stays whole in the window (no hidden
    // overflow), at both widths.
    const nav = await tech.evaluate(() => {
      const n = document.querySelector('.mainnav');
      return { scroll: n.scrollWidth, client: n.clientWidth, links: [...n.querySelectorAll('a')].map((a) => a.getBoundingClientRect().right) };
    });
    assert.ok(nav.scroll <= nav.client + 1, `the main navigation overflows: ${JSON.stringify(nav)}`);

    // The counts come from the server's read marks: a reload (no inbox frames) still says 3.
    await tech.goto('/cases');
    const row = tech.locator(`.case-row:has(a:text-is("${CASE}"))`);
    await row.getByTestId('unread').filter({ hasText: '3' }).waitFor();
    await tech.waitForFunction(() => document.title === '(3) Articula');
    await screenshot(tech, `unread-case-list-${width}`);

    // Coming in: the divider sits above the first unread message, in view, and the count goes.
    await tech.getByRole('link', { name: CASE, exact: true }).click();
    const divider = tech.getByTestId('new-divider');
    await divider.waitFor();
    await inView(tech, divider);
    const order = await tech.evaluate(() => {
      const items = [...document.querySelectorAll('.timeline-items > li')];
      const at = items.findIndex((li) => li.dataset.testid === 'new-divider');
      return items.slice(at + 1).filter((li) => li.classList.contains('msg')).map((li) => li.querySelector('.msg-text')?.textContent);
    });
    assert.deepEqual(order.slice(0, 3), words.map((w) => `Unread ${w}`));
    await tech.waitForFunction(() => document.title === 'Articula');
    assert.equal(await tech.getByTestId('unread-total').count(), 0);
    await screenshot(tech, `new-messages-divider-${width}`);

    // Read on the server too: after a reload nothing is unread.
    await tech.goto('/cases');
    await tech.locator(`.case-row:has(a:text-is("${CASE}"))`).waitFor();
    await tech.waitForFunction(() => document.title === 'Articula');
    assert.equal(await tech.locator(`.case-row:has(a:text-is("${CASE}"))`).getByTestId('unread').count(), 0);

    // A doctor has the most links in the header (Cases, Board, New case, Account): with a count
    // on Cases they still fit whole at this width.
    const { page: docAway } = await page(viewport);
    await signIn(docAway, 'doctor@demo.test');
    await docAway.goto('/cases');
    await openCase(tech, CASE);
    await tech.getByLabel('Message', { exact: true }).fill(`For the doctor ${width}`);
    await tech.getByLabel('Message', { exact: true }).press('Enter');
    await docAway.getByTestId('unread-total').waitFor();
    const links = await docAway.evaluate(() => {
      const n = document.querySelector('.mainnav');
      return { scroll: n.scrollWidth, client: n.clientWidth, right: Math.max(...[...n.querySelectorAll('a')].map((a) => a.getBoundingClientRect().right)), width: window.innerWidth };
    });
    assert.ok(links.scroll <= links.client + 1 && links.right <= links.width, `the doctor's links overflow: ${JSON.stringify(links)}`);
    env.assertNoProblems();
  });

  test(`typing ends with the message; replies, mentions, dates and the message menu (${width})`, async () => {
    const { page: doctor } = await page(viewport);
    const { page: tech } = await page(DESKTOP);
    await signIn(doctor, 'doctor@demo.test');
    await signIn(tech, 'tech@demo.test');
    await openCase(doctor, CASE);
    await openCase(tech, CASE);

    // The message box is two key presses from the top of the page: the skip links.
    await doctor.goto(doctor.url());
    await doctor.getByLabel('Message', { exact: true }).waitFor();
    await doctor.keyboard.press('Tab');
    await doctor.keyboard.press('Tab');
    await doctor.keyboard.press('Enter');
    await doctor.waitForFunction(() => document.activeElement?.id === 'composer-text');

    // Typing shows while the doctor types and is gone the moment the message is there.
    const text = `Margins look good ${width}`;
    await doctor.keyboard.type(text, { delay: 5 });
    await tech.getByTestId('typing').filter({ hasText: 'is typing' }).waitFor();
    await doctor.keyboard.press('Enter');
    const arrived = tech.locator('.msg', { hasText: text });
    await arrived.waitFor();
    assert.equal((await tech.getByTestId('typing').textContent()).trim(), '', 'the typing line lingered after the message');

    // Day separators and full dates: the day above, the clock in the line, the date on hover.
    const sep = doctor.getByTestId('day-separator').last();
    assert.equal(await sep.textContent(), 'Today');
    const today = await doctor.evaluate(() => {
      const d = new Date();
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    });
    assert.equal(await sep.locator('time').getAttribute('datetime'), today);
    const stamp = arrived.locator('time').first();
    assert.match(await stamp.getAttribute('datetime'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
    assert.match(await stamp.getAttribute('title'), /\d{4}/);

    // The technician replies to it, from the message's menu.
    const menu = arrived.getByRole('button', { name: 'Message actions' });
    const mb = await menu.boundingBox();
    assert.ok(mb.width >= 44 && mb.height >= 44, `menu button ${mb.width}x${mb.height}`);
    await menu.click();
    await tech.getByRole('menuitem', { name: 'Reply' }).click();
    await tech.getByTestId('replying').filter({ hasText: text }).waitFor();
    // …and mentions the doctor: "@An" offers her, Enter picks her.
    const techBox = tech.getByLabel('Message', { exact: true });
    await techBox.pressSequentially('Agreed @An', { delay: 5 });
    await tech.getByTestId('mention-list').getByRole('option', { name: /Dr\. Ana Ortiz/ }).waitFor();
    await techBox.press('Enter');
    await tech.waitForFunction(() => document.getElementById('composer-text').value === 'Agreed @Dr. Ana Ortiz ');
    await techBox.pressSequentially(`see you Thursday ${width}`, { delay: 5 });
    await techBox.press('Enter');

    // The doctor sees the reply quoting her message, and her name marked as a mention of her.
    const reply = doctor.locator('.msg', { hasText: `see you Thursday ${width}` });
    await reply.waitFor();
    await reply.getByTestId('reply-quote').filter({ hasText: text }).waitFor();
    await reply.locator('mark.mention-me', { hasText: '@Dr. Ana Ortiz' }).waitFor();
    assert.ok(await reply.evaluate((el) => el.classList.contains('msg-mentioned')));
    await screenshot(doctor, `reply-mention-${width}`);

    // Her own message: Edit from the menu.
    const id = await doctor.locator('.msg-own', { hasText: text }).getAttribute('data-message-id');
    const mine = doctor.locator(`[data-message-id="${id}"]`);
    await mine.getByRole('button', { name: 'Message actions' }).click();
    await doctor.getByRole('menuitem', { name: 'Edit' }).click();
    await doctor.getByLabel('Edit message').fill(`${text}, edited`);
    await mine.getByRole('button', { name: 'Save', exact: true }).click();
    await tech.locator('.msg', { hasText: `${text}, edited` }).waitFor();
    env.assertNoProblems();
  });

  test(`the paperclip uploads a new file straight from the composer (${width})`, async () => {
    const { page: doctor } = await page(viewport);
    const { page: tech } = await page(DESKTOP);
    await signIn(doctor, 'doctor@demo.test');
    await signIn(tech, 'tech@demo.test');
    await openCase(doctor, CASE);
    await openCase(tech, CASE);
    await doctor.getByRole('button', { name: 'Attach files' }).click();
    const name = `smile-${width}.png`;
    await doctor.getByTestId('composer-upload').setInputFiles({ name, mimeType: 'image/png', buffer: makePng() });
    // Progress in the composer, then the file is attached to the draft.
    await doctor.getByRole('list', { name: 'Attached to the next message' }).getByText(name).waitFor();
    await doctor.getByRole('button', { name: `Remove ${name}` }).waitFor();
    await doctor.getByRole('button', { name: 'Send' }).and(doctor.locator(':not([disabled])')).waitFor();
    await doctor.getByLabel('Message', { exact: true }).fill('Photo of the smile');
    await doctor.getByRole('button', { name: 'Send' }).click();
    const msg = tech.locator('.msg', { hasText: 'Photo of the smile' });
    await msg.getByRole('button', { name: new RegExp(name.replace('.', '\\.')) }).waitFor();
    await inView(doctor, doctor.getByLabel('Message', { exact: true }));
    env.assertNoProblems();
  });
}
