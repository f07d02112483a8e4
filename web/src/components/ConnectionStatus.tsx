// Whether what the user sees is live: the socket's state and the browser's network state.

import { realtime } from '../live';

const TEXT = {
  idle: 'Connecting…',
  connecting: 'Connecting…',
  open: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  closed: 'Disconnected',
} as const;

export function ConnectionStatus() {
  const s = realtime.state.value;
  return (
    <span class={`conn conn-${s}`} role="status" aria-live="polite" data-testid="connection">
      <span class="conn-dot" aria-hidden="true" />
      {TEXT[s]}
    </span>
  );
}

/** Tells the user what happens to what they send while the connection is down. */
export function OfflineBanner() {
  const s = realtime.state.value;
  const unsent = realtime.unsent.value;
  if (s === 'open' || s === 'idle' || s === 'connecting' || s === 'closed') return null;
  return (
    <div class="banner banner-warn" role="alert" data-testid="offline-banner">
      {s === 'offline' ? 'You are offline.' : 'Connection lost, reconnecting…'}{' '}
      {unsent > 0
        ? `${unsent} change${unsent === 1 ? '' : 's'} will be sent when the connection returns.`
        : 'What you send is kept and sent when the connection returns; you will see everything you missed.'}
    </div>
  );
}
