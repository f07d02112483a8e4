// Full-text search in the browser: the case list's search box finds a word of a message sent in
// the test and the doctor's name, with the matched words marked; a message result opens its case
// scrolled to that message, in view; the search inside the case room finds it too. At 1280x800
// and 390x844.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

const CASE = 'Crown 11 — shade A2';
let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

/** Whether the message is inside the visible part of the conversation and of the window. */
function inView(id) {
  const el = document.querySelector(`.timeline [data-message-id="${id}"]`);
  if (!el) return false;
  const r = el.getBoundingClientRect();
  const t = el.closest('.timeline').getBoundingClientRect();
  const top = Math.max(0, t.top);
  const bottom = Math.min(window.innerHeight, t.bottom);
  return r.height > 0 && r.top >= top - 1 && r.bottom <= bottom + 1;
}

for (const [name, viewport] of [
  ['desktop', DESKTOP],
  ['390', PHONE],
]) {
  test(`search finds a message and the doctor, and opens the message in its case (${name})`, async () => {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    await openCase(page, CASE);

    // A message with the word, then enough others that it scrolls out of view.
    const tag = `qz${name}`;
    const text = `Please recheck the margin on the mesial side ${tag}`;
    const box = page.getByLabel('Message', { exact: true });
    await box.fill(text);
    await box.press('Enter');
    const msg = page.locator('.msg[data-message-id]', { hasText: text });
    await msg.waitFor();
    const id = await msg.getAttribute('data-message-id');
    // Markup in a message is text, in the conversation and in search results alike.
    const markup = `<img src=x onerror="window.__xss=1"><b>bold${tag}</b>`;
    await box.fill(markup);
    await box.press('Enter');
    await page.locator('.msg[data-message-id]', { hasText: markup }).waitFor();
    for (let i = 0; i < 25; i++) {
      await box.fill(`Filler ${name} ${i}`);
      await box.press('Enter');
    }
    await page.locator('.msg[data-message-id]', { hasText: `Filler ${name} 24` }).waitFor();
    await page.waitForFunction((id) => !(function inView(id) {
      const el = document.querySelector(`.timeline [data-message-id="${id}"]`);
      if (!el) return false;
      const r = el.getBoundingClientRect();
      const t = el.closest('.timeline').getBoundingClientRect();
      return r.top >= Math.max(0, t.top) - 1 && r.bottom <= Math.min(window.innerHeight, t.bottom) + 1;
    })(id), id);

    // The case list's search box searches everything: the message, by one of its words.
    await page.getByRole('link', { name: 'Back to cases' }).click();
    await page.getByRole('heading', { name: 'Cases' }).waitFor();
    const searchBox = page.getByLabel('Search', { exact: true });
    await searchBox.fill('margin');
    const results = page.getByRole('list', { name: 'Matches' });
    const hit = results.locator('.hit', { hasText: tag });
    await hit.waitFor();
    assert.equal(await hit.locator('.hit-kind').textContent(), 'Message');
    assert.equal(await hit.locator('.hit-case').textContent(), CASE);
    assert.equal(await hit.locator('.hit-snippet').textContent(), text);
    assert.deepEqual(await hit.locator('mark').allTextContents(), ['margin']);
    // What was found is on screen without scrolling.
    const box1 = await hit.boundingBox();
    assert.ok(box1 && box1.y >= 0 && box1.y + box1.height <= viewport.height, `the result is off screen: ${JSON.stringify(box1)}`);
    await screenshot(page, `search-results-${name}`);

    await searchBox.fill(`bold${tag}`);
    const markupHit = results.locator('.hit', { hasText: `bold${tag}` });
    await markupHit.waitFor();
    assert.equal(await markupHit.locator('.hit-snippet').textContent(), markup);
    assert.equal(await results.locator('img, b').count(), 0, 'a snippet was rendered as HTML');
    assert.equal(await page.evaluate(() => window.__xss), undefined);

    // The doctor's name.
    await searchBox.fill('Ortiz');
    const person = results.locator('.hit', { hasText: 'Dr. Ana Ortiz' }).first();
    await person.waitFor();
    assert.equal(await person.locator('.hit-kind').textContent(), 'Doctor');
    assert.deepEqual(await person.locator('mark').allTextContents(), ['Ortiz']);
    await results.locator('.hit', { hasText: 'Bridge 34–36' }).first().waitFor();
    await screenshot(page, `search-person-${name}`);

    // The message result opens the case scrolled to the message, marked.
    await searchBox.fill('margin');
    await hit.waitFor();
    await hit.getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: CASE }).waitFor();
    assert.match(page.url(), new RegExp(`m=${id}`));
    await page.waitForFunction(inView, id);
    assert.ok(await page.locator(`[data-message-id="${id}"]`).evaluate((el) => el.classList.contains('msg-found')));
    await screenshot(page, `search-message-found-${name}`, page.locator(`[data-message-id="${id}"]`));

    // Inside the room: back to the newest, then the room's own search finds the message.
    await page.locator('.timeline').evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    await page.waitForFunction((id) => {
      const el = document.querySelector(`.timeline [data-message-id="${id}"]`);
      const r = el.getBoundingClientRect();
      const t = el.closest('.timeline').getBoundingClientRect();
      return r.bottom < t.top || r.top > t.bottom;
    }, id);
    await page.getByRole('button', { name: 'Search this case' }).click();
    await page.getByLabel('Search this case').fill(`margin ${tag}`);
    const found = page.getByRole('list', { name: 'Found in this case' }).locator('.hit', { hasText: tag });
    await found.waitFor();
    assert.equal(await page.getByRole('list', { name: 'Found in this case' }).locator('.hit').count(), 1);
    assert.deepEqual(await found.locator('mark').allTextContents(), ['margin', tag]);
    await screenshot(page, `search-room-${name}`);
    await found.getByRole('link').click();
    await page.waitForFunction(inView, id);
    env.assertNoProblems();
  });
}
