// The user's sessions (devices), ending one of them, and "log out every device".

import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import { errorText } from '../components/CaseBits';
import { formatTime, type SessionInfo } from '../domain';
import { me, signOut } from '../session';

export function Account() {
  const user = me.value;
  const [list, setList] = useState<SessionInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirmAll, setConfirmAll] = useState(false);

  const load = () =>
    api.sessions().then(
      (s) => {
        setList(s.sort((a, b) => Number(b.current) - Number(a.current) || b.last_used_at - a.last_used_at));
        setError(null);
      },
      (e) => setError(errorText(e)),
    );

  useEffect(() => {
    void load();
  }, []);

  async function end(id: string) {
    try {
      await api.endSession(id);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  }

  return (
    <section class="page page-narrow">
      <h1 tabIndex={-1}>Account</h1>
      {user && (
        <dl class="facts">
          <dt>Name</dt>
          <dd>{user.name}</dd>
          <dt>E-mail</dt>
          <dd>{user.email}</dd>
          <dt>Memberships</dt>
          <dd>
            <ul class="plain">
              {user.memberships.map((m) => (
                <li>
                  {m.org_name} — {m.role.replace('_', ' ')}
                </li>
              ))}
            </ul>
          </dd>
        </dl>
      )}
      <h2>Where you are signed in</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {list === null && !error && <p role="status">Loading sessions…</p>}
      {list && (
        <ul class="sessions" aria-label="Sessions">
          {list.map((s) => (
            <li class="session" data-current={s.current ? 'true' : undefined}>
              <div>
                <strong>{s.current ? 'This device' : describeDevice(s.device)}</strong>
                <div class="muted small">
                  {s.portal} portal · {s.ip} · signed in {formatTime(s.created_at)} · last used {formatTime(s.last_used_at)}
                </div>
              </div>
              {s.current ? (
                <button type="button" class="btn" onClick={() => void signOut()}>
                  Sign out
                </button>
              ) : (
                <button type="button" class="btn" onClick={() => void end(s.id)}>
                  End session
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <div class="danger-zone">
        <h2>Log out every device</h2>
        <p>Ends all your sessions, including this one. Open pages everywhere are signed out at once.</p>
        {confirmAll ? (
          <div class="actions">
            <button type="button" class="btn btn-danger" onClick={() => void signOut(true)}>
              Yes, log out every device
            </button>
            <button type="button" class="btn btn-quiet" onClick={() => setConfirmAll(false)}>
              Cancel
            </button>
          </div>
        ) : (
          <button type="button" class="btn btn-danger" onClick={() => setConfirmAll(true)}>
            Log out every device…
          </button>
        )}
      </div>
    </section>
  );
}

/** A short name for a user agent string. */
function describeDevice(ua: string): string {
  const browser = /Edg\//.test(ua) ? 'Edge' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Firefox\//.test(ua) ? 'Firefox' : /Safari\//.test(ua) ? 'Safari' : null;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : null;
  return browser && os ? `${browser} on ${os}` : ua.slice(0, 60);
}
