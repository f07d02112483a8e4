// Small pieces every case screen shows the same way.

import { formatDue, STATUS_LABEL, type CaseStatus } from '../domain';

export function StatusBadge({ status }: { status: CaseStatus }) {
  return (
    <span class={`badge status-${status}`} data-status={status}>
      {STATUS_LABEL[status]}
    </span>
  );
}

export function DueDate({ due, atRisk }: { due: string | null; atRisk: boolean }) {
  return (
    <span class={`due${atRisk ? ' due-risk' : ''}`}>
      <span class="visually-hidden">Due: </span>
      {due ? <time dateTime={due}>{formatDue(due)}</time> : 'No due date'}
      {atRisk && <span class="badge badge-risk">At risk</span>}
    </span>
  );
}

/** A command's failure, in words the user can act on. */
export function errorText(e: unknown): string {
  if (e && typeof e === 'object' && 'message' in e) return String((e as Error).message);
  return 'Something went wrong.';
}

/** A count of unread messages; the words are for screen readers. */
export function UnreadBadge({ n, mentions = 0, label, testid }: { n: number; mentions?: number; label: string; testid?: string }) {
  if (n <= 0) return null;
  return (
    <span class={`unread-badge${mentions > 0 ? ' unread-mention' : ''}`} data-testid={testid} data-count={n}>
      {mentions > 0 ? '@ ' : ''}
      {n > 99 ? '99+' : n}
      <span class="visually-hidden">
        {' '}
        {label}
        {mentions > 0 ? `, ${mentions} mentioning you` : ''}
      </span>
    </span>
  );
}
