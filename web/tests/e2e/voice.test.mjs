// A voice note recorded in the browser (MediaRecorder on Chromium's fake microphone) is uploaded
// through tus, plays for both sides, and its transcript appears under it when the server's
// transcription service (a tiny local stand-in for an OpenAI-compatible API) answers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { openCase, PHONE, screenshot, setup, signIn } from './harness.mjs';

const CASE = 'Bridge 34–36';
const TRANSCRIPT = 'Please make the contact on 35 a little tighter.';
let env;
let stt;
const calls = [];

/** `POST /v1/audio/transcriptions` (multipart: `file`, `model`) → `{"text": …}`. */
function transcriptionServer() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('latin1');
        const ok =
          req.method === 'POST' &&
          req.url === '/v1/audio/transcriptions' &&
          /multipart\/form-data/.test(req.headers['content-type'] ?? '') &&
          /name="model"/.test(body) &&
          /name="file"; filename="voice-note-[^"]+\.(webm|m4a|ogg)"/.test(body);
        calls.push({ url: req.url, ok, bytes: body.length });
        res.writeHead(ok ? 200 : 400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(ok ? { text: TRANSCRIPT } : { error: { message: 'bad request' } }));
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

before(async () => {
  stt = await transcriptionServer();
  env = await setup({ env: { ARTICULA_TRANSCRIPTION_URL: `http://127.0.0.1:${stt.address().port}/v1` } });
});
after(async () => {
  await env?.close();
  await new Promise((r) => (stt ? stt.close(r) : r()));
});

test('a voice note recorded with the microphone plays on both sides and gets its transcript', async () => {
  const { page: doctor, context } = await env.page(PHONE);
  const { page: tech } = await env.page();
  await context.grantPermissions(['microphone']);
  await signIn(doctor, 'doctor@demo.test');
  await signIn(tech, 'tech@demo.test');
  await openCase(doctor, CASE);
  await openCase(tech, CASE);

  await doctor.getByRole('button', { name: 'Record a voice note' }).click();
  await doctor.getByRole('timer').filter({ hasText: /Recording 0:0[2-9]/ }).waitFor();
  await doctor.getByRole('button', { name: 'Stop and send' }).click();

  // It arrives in the conversation of both, with a player that has loaded the recording.
  for (const page of [doctor, tech]) {
    await page.bringToFront(); // the player loads its link once it is on screen
    const note = page.getByTestId('voice-note').last();
    await note.locator('audio').waitFor();
    const media = await page.waitForFunction(() => {
      const a = [...document.querySelectorAll('[data-testid=voice-note] audio')].at(-1);
      return a && a.src && a.readyState >= 1 ? { readyState: a.readyState, duration: a.duration, src: a.src } : null;
    });
    const m = await media.jsonValue();
    assert.match(m.src, /\/api\/v1\/files\/[0-9a-f-]+\/content\?.*inline=1/);
  }
  // The player plays (the fake microphone's tone).
  await tech.bringToFront();
  const played = await tech.evaluate(async () => {
    const a = [...document.querySelectorAll('[data-testid=voice-note] audio')].at(-1);
    a.muted = true;
    await a.play();
    return new Promise((resolve) => {
      const check = () => (a.currentTime > 0.2 ? resolve(a.currentTime) : requestAnimationFrame(check));
      check();
    });
  });
  assert.ok(played > 0.2);

  // The transcript follows (the server's worker asks the service), live for both.
  await doctor.bringToFront();
  await doctor.getByTestId('voice-note').last().getByTestId('transcript').filter({ hasText: TRANSCRIPT }).waitFor();
  await tech.getByTestId('voice-note').last().getByTestId('transcript').filter({ hasText: TRANSCRIPT }).waitFor();
  assert.ok(calls.some((c) => c.ok), JSON.stringify(calls));

  await screenshot(tech, 'voice-note-desktop', tech.getByTestId('voice-note').last());

  // The voice note is a file of the case too, kind "Voice note", with its transcript.
  await tech.getByRole('tab', { name: 'Files' }).click();
  const file = tech.getByTestId('file').filter({ hasText: /voice-note-.*\.(webm|m4a|ogg)/ });
  await file.getByText('Voice note', { exact: true }).waitFor();
  await file.getByText(TRANSCRIPT).waitFor();
  await screenshot(doctor, 'voice-note-390', doctor.getByTestId('voice-note').last());
  env.assertNoProblems();
});
