// Sign-in on one of the two portals (clinic, lab): separate environments, each with its own URL.

import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import type { Portal } from '../domain';
import { onLinkClick } from '../router';
import { endedReason, signIn } from '../session';

const MESSAGES: Record<string, string> = {
  invalid_credentials: 'The e-mail or the password is wrong.',
  account_locked: 'Too many failed attempts: this account is locked for a while. Try again later.',
  rate_limited: 'Too many attempts from here. Wait a moment and try again.',
  validation_failed: 'Enter a valid e-mail and your password.',
  invalid_email: 'Enter a valid e-mail address.',
};

export function SignIn({ portal }: { portal: Portal }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ text: string; otherPortal?: boolean } | null>(null);
  const other: Portal = portal === 'clinic' ? 'lab' : 'clinic';
  const title = portal === 'clinic' ? 'Clinic portal' : 'Lab portal';

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(email.trim(), password, portal);
      // The app shell notices the user and moves on to the start page.
    } catch (err) {
      if (err instanceof ApiError && err.code === 'wrong_portal') {
        setError({ text: `This account does not belong to the ${portal} portal.`, otherPortal: true });
      } else if (err instanceof ApiError) {
        setError({ text: MESSAGES[err.code] ?? err.message });
      } else {
        setError({ text: 'The server cannot be reached. Check your connection and try again.' });
      }
      setBusy(false);
    }
  }

  return (
    <main id="main" class={`signin portal-${portal}`} onClick={onLinkClick}>
      <div class="signin-card">
        <p class="brand brand-large">Articula</p>
        <h1 tabIndex={-1}>{title}</h1>
        <p class="muted">
          {portal === 'clinic'
            ? 'For doctors and clinic staff.'
            : 'For dental technicians and lab staff.'}
        </p>
        {endedReason.value && (
          <p class="notice" role="status">
            {endedReason.value}
          </p>
        )}
        <form onSubmit={submit} class="stack" noValidate={false}>
          <label class="field">
            <span>E-mail</span>
            <input
              type="email"
              name="email"
              autoComplete="username"
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </label>
          <label class="field">
            <span>Password</span>
            <input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          {error && (
            <p class="error" role="alert">
              {error.text}{' '}
              {error.otherPortal && <a href={`/${other}/sign-in`}>Use the {other} portal</a>}
            </p>
          )}
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        <p class="portal-switch">
          {portal === 'clinic' ? 'Working at a lab? ' : 'Working at a clinic? '}
          <a href={`/${other}/sign-in`}>
            Sign in on the {other} portal
          </a>
        </p>
      </div>
    </main>
  );
}
