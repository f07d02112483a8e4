// Layout (issue 19): what asks a person to decide is in view when it appears, at 1280×800 and at
// 390×844; the board's columns are all reachable and "at risk" says why; the phone case room
// keeps its composer, its tabs and its tap targets whole; and the smaller points (units, the
// approval form after an approval, one download per 3D preview, a visible focus ring).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

let env;

before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

const WIDTHS = [
  ['1280x800', DESKTOP],
  ['390x844', PHONE],
];
const BRIDGE = 'Bridge 34–36';
const CROWN = 'Crown 11 — shade A2';

/** The element's box against the window, and whether it is wholly inside it and on top at its
 * centre (not hidden under another element). */
async function box(locator) {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return {
      top: Math.round(r.top),
      bottom: Math.round(r.bottom),
      left: Math.round(r.left),
      right: Math.round(r.right),
      width: Math.round(r.width),
      height: Math.round(r.height),
      vw: window.innerWidth,
      vh: window.innerHeight,
      inside: r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight + 0.5 && r.right <= window.innerWidth + 0.5,
      onTop: !!hit && (hit === el || el.contains(hit)),
    };
  });
}

async function assertInView(locator, what) {
  await locator.waitFor();
  const b = await box(locator);
  assert.ok(b.inside && b.onTop, `${what} must be in view without scrolling: ${JSON.stringify(b)}`);
}

for (const [name, viewport] of WIDTHS) {
  test(`${name}: a design approval arriving live shows Approve and Reject in view`, async () => {
    const { page: doctor } = await env.page(viewport);
    const { page: tech } = await env.page();
    await signIn(doctor, 'doctor@demo.test');
    await signIn(tech, 'tech@demo.test');
    await openCase(doctor, BRIDGE);
    await openCase(tech, BRIDGE);

    // The approval waiting now is answered first, so that a new one can arrive live.
    await doctor.getByRole('tab', { name: /Approvals/ }).click();
    const waiting = doctor.locator('.approval-pending');
    await waiting.getByRole('button', { name: 'Reject…' }).click();
    await waiting.getByLabel('What should the lab change? (required)').fill('Narrow the pontic, please.');
    await waiting.getByRole('button', { name: 'Reject with comment' }).click();
    await doctor.locator('.room-head [data-status=in_design]').waitFor();
    await doctor.locator('.approval-rejected').first().waitFor();

    // The lab asks again; the doctor is looking at the Approvals panel.
    const downloads = [];
    doctor.on('request', (r) => r.url().includes('/content') && downloads.push(r.url()));
    await tech.getByRole('tab', { name: 'Approvals' }).click();
    const form = tech.locator('form.request-approval');
    await form.getByLabel('Comment (optional)').fill(`Narrower pontic (${name}).`);
    await form.getByRole('button', { name: /Request approval/ }).click();

    const item = doctor.locator('.approval-pending');
    await item.getByText(`Narrower pontic (${name}).`).waitFor();
    // Measured once the 3D preview has taken its place (the layout no longer moves).
    await item.getByTestId('mesh-viewer').and(doctor.locator('[data-state=ready]')).waitFor();
    // The design was downloaded once for its preview.
    assert.equal(downloads.length, 1, `downloads of the design: ${downloads.length}`);
    await assertInView(item.getByRole('button', { name: 'Approve design' }), 'Approve design');
    await assertInView(item.getByRole('button', { name: 'Reject…' }), 'Reject…');
    await screenshot(doctor, name === '390x844' ? 'approval-live-390' : 'approval-live-desktop');
    env.assertNoProblems();
  });
}

/** Whether a select shows its chosen option's text whole (no clipping of the text). */
async function selectFits(locator) {
  return locator.evaluate((el) => {
    const cs = getComputedStyle(el);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const text = el.options[el.selectedIndex]?.text ?? '';
    const need = ctx.measureText(text).width + parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight) + 20; // + the arrow
    return { text, need: Math.ceil(need), have: el.clientWidth, ok: need <= el.clientWidth };
  });
}

const MINE = { '1280x800': 'B1', '390x844': 'B2' };
const THEIRS = { '1280x800': 'C1', '390x844': 'C2' };

for (const [name, viewport] of WIDTHS) {
  test(`${name}: an Rx conflict shows its choices in view`, async () => {
    // The same doctor on two devices; `page` is the one that loses the race.
    const { page } = await env.page(viewport);
    const { page: other } = await env.page();
    await signIn(page, 'doctor@demo.test');
    await signIn(other, 'doctor@demo.test');
    for (const p of [page, other]) {
      await openCase(p, CROWN);
      await p.getByRole('tab', { name: 'Digital Rx' }).click();
      await p.getByTestId('rx').waitFor();
      await p.getByRole('button', { name: /^Tooth 11\b/ }).click();
      await p.getByTestId('tooth-editor').getByText('Tooth 11', { exact: true }).waitFor();
    }
    await page.getByTestId('tooth-editor').getByLabel('Shade').selectOption(MINE[name]);
    await other.getByTestId('tooth-editor').getByLabel('Shade').selectOption(THEIRS[name]);
    await other.getByRole('button', { name: 'Save Rx' }).click();
    await other.getByText('Saved.').waitFor();
    await page.getByText(new RegExp(`changed by .* meanwhile: now ${THEIRS[name]}`, 'i')).waitFor();
    // The tooth's fields show their values whole (e.g. "Lithium disilicate").
    for (const select of await page.getByTestId('tooth-editor').locator('select').all()) {
      const fit = await selectFits(select);
      assert.ok(fit.ok, `the select shows "${fit.text}" whole: ${JSON.stringify(fit)}`);
    }

    // The doctor scrolls until Save just shows at the bottom of the panel, and presses it.
    const save = page.getByRole('button', { name: 'Save Rx' });
    await save.evaluate((el) => el.scrollIntoView({ block: 'end' }));
    await save.click();
    const conflict = page.getByTestId('rx-conflict');
    await conflict.waitFor();
    await assertInView(conflict.getByRole('button', { name: 'Re-apply mine' }), 'Re-apply mine');
    await assertInView(conflict.getByRole('button', { name: 'Keep theirs' }), 'Keep theirs');
    if (name === '1280x800') await screenshot(page, 'rx-conflict-desktop');
    await conflict.getByRole('button', { name: 'Keep theirs' }).click();
    await conflict.waitFor({ state: 'detached' });
    env.assertNoProblems();
  });
}

const TOOTH = { '1280x800': 13, '390x844': 14 };

for (const [name, viewport] of WIDTHS) {
  test(`${name}: a lab's Rx proposal marks the Rx tab and shows its choices in view`, async () => {
    const { page: doctor } = await env.page(viewport);
    const { page: tech } = await env.page();
    await signIn(doctor, 'doctor@demo.test');
    await signIn(tech, 'tech@demo.test');
    await openCase(doctor, CROWN);
    await openCase(tech, CROWN);
    // The doctor is elsewhere in the case (the Files panel).
    await doctor.getByRole('tab', { name: 'Files' }).click();
    await doctor.getByTestId('files').waitFor();
    const tab = doctor.getByRole('tab', { name: /Digital Rx/ });
    assert.equal(await tab.getByTestId('rx-tab-badge').count(), 0);

    const tooth = TOOTH[name];
    await tech.getByRole('tab', { name: 'Digital Rx' }).click();
    await tech.getByRole('button', { name: new RegExp(`^Tooth ${tooth}\\b`) }).click();
    await tech.getByTestId('tooth-editor').getByLabel('Restoration').selectOption('veneer');
    await tech.getByRole('button', { name: 'Propose changes' }).click();
    await tech.getByText('Proposal sent to the doctor.').waitFor();

    // The Rx tab says a decision waits, and says it in its name too.
    await assertInView(tab.getByTestId('rx-tab-badge'), 'the Rx tab badge');
    assert.match((await tab.getAttribute('aria-label')) ?? (await tab.innerText()), /Rx/);
    assert.match(await tab.evaluate((el) => el.textContent ?? ''), /1/);
    if (name === '390x844') await screenshot(doctor, 'rx-proposal-badge-390');
    await tab.click();
    const proposal = doctor.locator('.proposal-open');
    await proposal.getByText(`Tooth ${tooth} · restoration`).waitFor();
    await assertInView(proposal.getByRole('button', { name: 'Accept' }), 'Accept');
    await assertInView(proposal.getByRole('button', { name: 'Decline' }), 'Decline');
    await proposal.getByRole('button', { name: 'Decline' }).click();
    await tab.getByTestId('rx-tab-badge').waitFor({ state: 'detached' });
    env.assertNoProblems();
  });
}

test('1280x800: every board column is on screen, and an at-risk card says why', async () => {
  const { page } = await env.page(DESKTOP);
  await signIn(page, 'admin@demo.test');
  await page.getByRole('heading', { name: 'Clinic board' }).waitFor();
  const implant = page.locator('.card:has(a:text-is("Implant crown 46"))');
  await implant.waitFor();
  const board = page.getByTestId('board');
  const widths = await board.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
  assert.ok(widths.scroll <= widths.client + 1, `the board fits its width: ${JSON.stringify(widths)}`);
  const titles = page.locator('[data-column] h2');
  assert.equal(await titles.count(), 12);
  for (let i = 0; i < 12; i++) await assertInView(titles.nth(i), `column title ${await titles.nth(i).innerText()}`);
  await assertInView(implant, 'the at-risk card');
  // Due tomorrow, in production (it needs two days there): the card says so, in the server's figures.
  assert.equal(await implant.getByTestId('risk-reason').innerText(), 'needs 2 days at this stage, 1 day left');
  assert.match(await implant.locator('.badge-risk').getAttribute('title'), /needs 2 days at this stage, 1 day left/);
  await assertInView(page.getByTestId('risk-legend'), 'the at-risk legend');
  env.assertNoProblems();
});

test('390x844: the board names its columns at the top, and one tap shows the at-risk case', async () => {
  const { page } = await env.page(PHONE);
  await signIn(page, 'admin@demo.test');
  await page.getByRole('heading', { name: 'Clinic board' }).waitFor();
  await page.locator('.card:has(a:text-is("Implant crown 46"))').waitFor();
  await assertInView(page.getByTestId('risk-legend'), 'the at-risk legend');
  const chip = page.locator('.board-index [data-chip=in_production]');
  await assertInView(chip, 'the In production chip');
  assert.match(await chip.innerText(), /In production\s*1\s*1 at risk/);
  await chip.click();
  const implant = page.locator('.card:has(a:text-is("Implant crown 46"))');
  await page.waitForFunction(() => {
    const el = [...document.querySelectorAll('.card')].find((c) => c.textContent?.includes('Implant crown 46'));
    const r = el?.getBoundingClientRect();
    return r && r.top >= 0 && r.bottom <= window.innerHeight;
  });
  await assertInView(implant, 'the at-risk card');
  assert.equal(await implant.getByTestId('risk-reason').innerText(), 'needs 2 days at this stage, 1 day left');
  env.assertNoProblems();
});

for (const [name, viewport] of WIDTHS) {
  test(`${name}: the case room keeps its composer, tabs and controls whole`, async () => {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    await openCase(page, CROWN);
    if (viewport === PHONE) await page.getByRole('tab', { name: 'Chat' }).click();
    const fit = await selectFits(page.getByTestId('status-select'));
    assert.ok(fit.ok, `the status select shows "${fit.text}" whole: ${JSON.stringify(fit)}`);

    const text = `Tap targets checked at ${name}.`;
    const composer = page.getByRole('textbox', { name: 'Message' });
    await composer.fill(text);
    await page.getByRole('button', { name: 'Send' }).click();
    const mine = page.locator('.msg', { hasText: text });
    await mine.getByRole('button', { name: 'Message actions' }).waitFor();

    await assertInView(composer, 'the message box');
    await assertInView(page.getByRole('button', { name: 'Send' }), 'Send');
    for (const t of await page.getByRole('tab').all()) {
      const b = await t.evaluate((el) => ({ label: el.textContent, scroll: el.scrollWidth, client: el.clientWidth }));
      assert.ok(b.scroll <= b.client, `tab "${b.label}" is not cut: ${JSON.stringify(b)}`);
      await assertInView(t, `tab ${b.label}`);
    }
    if (viewport === PHONE) {
      // Every control a thumb needs is at least 44 × 44 px.
      const targets = [
        ['back', page.getByRole('link', { name: 'Back to cases' })],
        ['Message actions', mine.getByRole('button', { name: 'Message actions' })],
        ['Show', page.locator('.note').getByRole('button', { name: 'Show' }).first()],
        ...(await page.getByRole('tab').all()).map((t, i) => [`tab ${i}`, t]),
      ];
      for (const [what, l] of targets) {
        await l.scrollIntoViewIfNeeded();
        const b = await box(l);
        assert.ok(b.width >= 44 && b.height >= 44, `${what} is ${b.width}×${b.height}`);
      }
      // The message's Edit and Delete, in its menu.
      await mine.getByRole('button', { name: 'Message actions' }).click();
      for (const item of ['Edit', 'Delete']) {
        const b = await box(page.getByRole('menuitem', { name: item }));
        assert.ok(b.width >= 44 && b.height >= 44, `${item} is ${b.width}×${b.height}`);
      }
      await page.keyboard.press('Escape');

      // Scrolling the conversation folds the case header away; the composer stays.
      // (Typing folded it already: open it again first.)
      if (await page.locator('.room-head-collapsed').count()) await page.getByRole('button', { name: 'Expand the case header' }).click();
      await page.getByTestId('status-select').waitFor();
      const head = page.getByTestId('room-head');
      const tall = (await box(head)).height;
      const log = page.getByRole('log', { name: 'Conversation' });
      const lb = await box(log);
      await page.mouse.move(lb.left + lb.width / 2, lb.top + lb.height / 2);
      await page.mouse.wheel(0, -400);
      await page.locator('.room-head-collapsed').waitFor();
      const short = (await box(head)).height;
      assert.ok(short < tall * 0.6, `the header folds: ${tall} → ${short} px`);
      await assertInView(composer, 'the message box (header folded)');
      await screenshot(page, 'case-room-collapsed-390');
      await page.getByRole('button', { name: 'Expand the case header' }).click();
      await page.getByTestId('status-select').waitFor();

      // Typing: an on-screen keyboard leaves less of the window; the composer stays above it.
      await composer.click();
      await page.setViewportSize({ width: 390, height: 480 });
      await page.waitForFunction(() => {
        const r = document.getElementById('composer-text')?.getBoundingClientRect();
        return r && r.bottom <= window.innerHeight;
      });
      await assertInView(composer, 'the message box above the keyboard');
      await page.setViewportSize(PHONE);
    }
    env.assertNoProblems();
  });
}

for (const [name, viewport] of WIDTHS) {
  test(`${name}: the tooth chart keeps its midline, 18–11 | 21–28 and 48–41 | 31–38 in one row each`, async () => {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    await openCase(page, CROWN);
    await page.getByRole('tab', { name: 'Digital Rx' }).click();
    await page.getByTestId('rx').waitFor();
    const rows = [
      [18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28],
      [48, 47, 46, 45, 44, 43, 42, 41, 31, 32, 33, 34, 35, 36, 37, 38],
    ];
    for (const row of rows) {
      const boxes = [];
      for (const t of row) boxes.push(await box(page.locator(`[data-tooth="${t}"]`)));
      const tops = new Set(boxes.map((b) => b.top));
      assert.equal(tops.size, 1, `teeth ${row[0]}…${row.at(-1)} share one row: ${[...tops]}`);
      for (let i = 1; i < boxes.length; i++) assert.ok(boxes[i].left >= boxes[i - 1].right, `tooth ${row[i]} right of ${row[i - 1]}`);
      for (const [i, b] of boxes.entries()) {
        assert.ok(b.left >= 0 && b.right <= b.vw, `tooth ${row[i]} on screen: ${JSON.stringify(b)}`);
        assert.ok(b.width >= 19 && b.height >= 44, `tooth ${row[i]} is ${b.width}×${b.height}`);
      }
      // The midline: a wider gap between the two central teeth than between neighbours.
      const gap = boxes[8].left - boxes[7].right;
      const step = boxes[1].left - boxes[0].right;
      assert.ok(gap > step, `midline gap ${gap} px > ${step} px`);
    }
    if (viewport === PHONE) await screenshot(page, 'rx-chart-midline-390', page.locator('.chart'));
    env.assertNoProblems();
  });
}

for (const [name, viewport] of WIDTHS) {
  test(`${name}: mesh sizes in mm, one download per 3D preview, no request form above an approval`, async () => {
    const { page: doctor } = await env.page(viewport);
    const { page: tech } = await env.page(viewport);
    await signIn(doctor, 'doctor@demo.test');
    await signIn(tech, 'tech@demo.test');
    await openCase(doctor, BRIDGE);
    await openCase(tech, BRIDGE);

    // An approval of the design is waiting (the lab asks again if the last one was answered).
    await tech.getByRole('tab', { name: 'Approvals' }).click();
    await tech.locator('.approvals li.approval').first().waitFor();
    const again = tech.getByRole('button', { name: 'Request another approval…' });
    const form = tech.locator('form.request-approval');
    if (!(await tech.locator('.approval-pending').count())) {
      await form.or(again).first().waitFor();
      if (await again.count()) await again.click();
      await form.getByRole('button', { name: /Request approval/ }).click();
      await tech.locator('.approval-pending').waitFor();
    }

    // The doctor opens the approval: its design is downloaded once, not started and aborted.
    const downloads = [];
    doctor.on('request', (r) => r.url().includes('/content') && downloads.push(r.url()));
    await doctor.getByRole('tab', { name: /Approvals/ }).click();
    const item = doctor.locator('.approval-pending');
    const viewer = item.getByTestId('mesh-viewer');
    await viewer.and(doctor.locator('[data-state=ready]')).waitFor();
    assert.equal(downloads.length, 1, `one download: ${downloads.length}`);
    // Its size has a unit.
    assert.match(await viewer.locator('figcaption').innerText(), /triangles · [\d.]+ × [\d.]+ × [\d.]+ mm/);

    await item.getByRole('button', { name: 'Approve design' }).click();
    // The lab sees the answer at the top, not a form asking for what was just given.
    await tech.locator('.approvals li.approval').first().and(tech.locator('.approval-approved')).waitFor();
    await tech.locator('.room-head [data-status=approved]').waitFor();
    assert.equal(await form.count(), 0);
    await again.waitFor();
    env.assertNoProblems();
  });
}

for (const [name, viewport] of WIDTHS) {
  test(`${name}: the focus ring on the dark header is plainly visible`, async () => {
    const { page } = await env.page(viewport);
    await signIn(page, 'doctor@demo.test');
    await page.getByRole('heading', { name: 'Cases' }).waitFor();
    // Keyboard focus into the header: back from the page's heading (focused on arrival).
    let inHeader = false;
    for (let i = 0; i < 8 && !inHeader; i++) {
      await page.keyboard.press('Shift+Tab');
      inHeader = await page.evaluate(() => !!document.activeElement?.closest('.topbar'));
    }
    assert.ok(inHeader, 'focus reached the header');
    const ring = await page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      const bg = getComputedStyle(el.closest('.topbar')).backgroundColor;
      const rgb = (s) => s.match(/[\d.]+/g).slice(0, 3).map(Number);
      const lum = ([r, g, b]) => {
        const f = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      const [a, b] = [lum(rgb(cs.outlineColor)), lum(rgb(bg))].sort((x, y) => y - x);
      return { style: cs.outlineStyle, width: parseFloat(cs.outlineWidth), color: cs.outlineColor, bg, contrast: (a + 0.05) / (b + 0.05) };
    });
    assert.ok(ring.style !== 'none' && ring.width >= 2, JSON.stringify(ring));
    assert.ok(ring.contrast >= 3, `focus ring contrast on the header ≥ 3:1: ${JSON.stringify(ring)}`);
    env.assertNoProblems();
  });
}
