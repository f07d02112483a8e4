// The realtime client against a scripted socket: exactly-once resends, resume with `since`,
// gaps, authentication, revocation, resync and offline behaviour.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RealtimeClient, SUBPROTOCOL } from '../../src/realtime';

class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: any[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason?: string }) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocol: string,
  ) {
    FakeSocket.all.push(this);
  }
  send(s: string) {
    this.sent.push(JSON.parse(s));
  }
  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  // --- the test plays the server ---
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(type: string, data: unknown) {
    this.onmessage?.({ data: JSON.stringify({ v: 1, type, data }) });
  }
  welcome() {
    this.open();
    this.receive('welcome', { user_id: 'u1', heartbeat_secs: 15, max_frame_bytes: 65536 });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  frames(type: string) {
    return this.sent.filter((f) => f.type === type);
  }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const flush = () => new Promise<void>((r) => queueMicrotask(r));

function makeClient(over: Partial<ConstructorParameters<typeof RealtimeClient>[0]> = {}) {
  let n = 0;
  const listeners: Record<string, (() => void)[]> = {};
  const env = {
    navigator: { onLine: true },
    addEventListener: (t: string, f: () => void) => (listeners[t] ??= []).push(f),
    removeEventListener: () => {},
    fire: (t: string) => listeners[t]?.forEach((f) => f()),
  };
  const reauthenticate = vi.fn(async () => true);
  const onRevoked = vi.fn();
  const client = new RealtimeClient({
    url: () => 'wss://test/api/v1/ws',
    reauthenticate,
    onRevoked,
    newId: () => `id${++n}`,
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
    env: env as any,
    ...over,
  });
  return { client, env, reauthenticate, onRevoked };
}

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('RealtimeClient', () => {
  it('speaks the JSON subprotocol and waits for welcome before sending', async () => {
    const { client } = makeClient();
    client.start();
    expect(last().protocol).toBe(SUBPROTOCOL);
    const p = client.command('post_message', { case_id: 'c', text: 'hi' });
    last().open();
    expect(last().frames('post_message')).toHaveLength(0);
    last().receive('welcome', { user_id: 'u1' });
    expect(client.state.value).toBe('open');
    const [frame] = last().frames('post_message');
    expect(frame).toEqual({ v: 1, type: 'post_message', id: frame.id, data: { case_id: 'c', text: 'hi' } });
    last().receive('ack', { id: frame.id, seq: 7 });
    await expect(p).resolves.toEqual({ id: frame.id, seq: 7 });
    expect(client.unsent.value).toBe(0);
  });

  it('resends an unanswered command with the same id after a reconnect, and settles it once', async () => {
    const { client } = makeClient();
    client.start();
    last().welcome();
    const settled = vi.fn();
    client.command('post_message', { case_id: 'c', text: 'once' }).then(settled);
    const id = last().frames('post_message')[0].id;
    last().drop();
    expect(client.unsent.value).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.all).toHaveLength(2);
    last().welcome();
    const resent = last().frames('post_message');
    expect(resent).toHaveLength(1);
    expect(resent[0].id).toBe(id);
    last().receive('ack', { id, seq: 9 });
    last().receive('ack', { id, seq: 9 }); // a duplicate answer changes nothing
    await flush();
    expect(settled).toHaveBeenCalledTimes(1);
    expect(settled).toHaveBeenCalledWith({ id, seq: 9 });
  });

  it('resumes a case with since = the last seq applied, skipping duplicates, never across a gap', async () => {
    const { client } = makeClient();
    const seen: number[] = [];
    client.start();
    last().welcome();
    client.subscribeCase('c', 0, { onEvent: (e) => seen.push(e.seq) });
    const sub = last().frames('subscribe')[0];
    expect(sub.data).toEqual({ case_id: 'c', since: 0 });
    last().receive('ack', { id: sub.id, seq: 2 });
    for (const seq of [1, 2, 2]) last().receive('event', { case_id: 'c', seq, kind: 'message_posted', data: {} });
    expect(seen).toEqual([1, 2]);

    // A gap (4 after 2) is not applied: the client asks again from 2.
    last().receive('event', { case_id: 'c', seq: 4, kind: 'message_posted', data: {} });
    expect(seen).toEqual([1, 2]);
    const again = last().frames('subscribe')[1];
    expect(again.data).toEqual({ case_id: 'c', since: 2 });
    last().receive('ack', { id: again.id, seq: 4 });
    for (const seq of [3, 4]) last().receive('event', { case_id: 'c', seq, kind: 'message_posted', data: {} });
    expect(seen).toEqual([1, 2, 3, 4]);

    // After a reconnect it resumes from 4, before resending commands.
    client.command('post_message', { case_id: 'c', text: 'x' });
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    last().welcome();
    const types = last().sent.map((f) => f.type).filter((t) => t !== 'ping');
    expect(types).toEqual(['subscribe', 'post_message']);
    expect(last().frames('subscribe')[0].data).toEqual({ case_id: 'c', since: 4 });
  });

  it('reauthenticates when the socket is not authenticated (pong before welcome)', async () => {
    const { client, reauthenticate } = makeClient();
    client.start();
    const first = last();
    first.open();
    const hello = first.frames('ping')[0];
    first.receive('pong', { id: hello.id });
    await flush();
    await flush();
    expect(reauthenticate).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.all).toHaveLength(2);
    last().welcome();
    expect(client.state.value).toBe('open');
  });

  it('signs out on close 4001 (revoked) and does not reconnect', async () => {
    const { client, onRevoked } = makeClient();
    client.start();
    last().welcome();
    last().drop(4001);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(onRevoked).toHaveBeenCalledTimes(1);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('reconnects at once after resync (close 4000)', () => {
    const { client } = makeClient();
    client.start();
    last().welcome();
    last().receive('resync', { case_id: 'c', reason: 'lagged', last_seq: 3 });
    last().drop(4000);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it('backs off exponentially with jitter', async () => {
    const { client } = makeClient();
    vi.spyOn(Math, 'random').mockReturnValue(1); // the longest delay of each step
    client.start();
    for (const ceiling of [500, 1000, 2000, 4000]) {
      last().drop();
      const before = FakeSocket.all.length;
      await vi.advanceTimersByTimeAsync(ceiling - 1);
      expect(FakeSocket.all.length).toBe(before);
      await vi.advanceTimersByTimeAsync(1);
      expect(FakeSocket.all.length).toBe(before + 1);
    }
  });

  it('waits for the network while offline, then reconnects at once', async () => {
    const { client, env } = makeClient();
    client.start();
    last().welcome();
    env.navigator.onLine = false;
    env.fire('offline');
    await flush();
    expect(client.state.value).toBe('offline');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    env.navigator.onLine = true;
    env.fire('online');
    expect(FakeSocket.all).toHaveLength(2);
  });

  it('drops volatile commands when the socket closes, keeps durable ones', async () => {
    const { client } = makeClient();
    client.start();
    last().welcome();
    const read = client.volatile('mark_read', { case_id: 'c', seq: 1 });
    const post = client.command('post_message', { case_id: 'c', text: 'kept' });
    last().drop();
    await expect(read).rejects.toMatchObject({ code: 'offline' });
    expect(client.unsent.value).toBe(1);
    void post;
  });

  it('rejects a refused command with its code and details', async () => {
    const { client } = makeClient();
    client.start();
    last().welcome();
    const p = client.command('edit_rx', { case_id: 'c', changes: [] });
    const id = last().frames('edit_rx')[0].id;
    const details = { conflicts: [{ field: 'teeth.11.shade', value: 'A3', version: 40 }] };
    last().receive('error', { id, code: 'rx_conflict', message: 'changed', details });
    await expect(p).rejects.toMatchObject({ code: 'rx_conflict', details });
  });
});
