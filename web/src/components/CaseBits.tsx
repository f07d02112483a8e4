// Small pieces every case screen shows the same way.

import { formatDue, STATUS_LABEL, type CaseStatus } from '../domain';

export function StatusBadge({ status }: { status: CaseStatus }) {
  return (
    <span class={`badge status-${status}`} data-status={status}>
      {STATUS_LABEL[status]}
    </span>
  );
}

/** Why a case is at risk, in the figures of the server's rule (actors/src/policy.rs): the days
 * its status still needs before the due date against the days left. */
export function riskReason(needed: number | null | undefined, left: number | null | undefined): string | null {
  if (needed == null || left == null) return null;
  const days = (n: number) => `${n} day${n === 1 ? '' : 's'}`;
  const leftText = left < 0 ? `${days(-left)} overdue` : left === 0 ? 'due today' : `${days(left)} left`;
  return `needs ${days(needed)} at this stage, ${leftText}`;
}

export function DueDate({ due, atRisk, needed, left }: { due: string | null; atRisk: boolean; needed?: number | null; left?: number | null }) {
  const reason = atRisk ? riskReason(needed, left) : null;
  return (
    <span class={`due${atRisk ? ' due-risk' : ''}`}>
      <span class="visually-hidden">Due: </span>
      {due ? <time dateTime={due}>{formatDue(due)}</time> : 'No due date'}
      {atRisk && (
        <span class="badge badge-risk" title={reason ? `At risk: ${reason}` : undefined}>
          At risk
        </span>
      )}
      {reason && (
        <span class="risk-reason" data-testid="risk-reason">
          {reason}
        </span>
      )}
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
