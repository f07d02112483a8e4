// Owners and auditors see no case content (DESIGN §2). Owners manage their organisation here
// (members, roles, sessions, incident notices: Organisation.tsx); the auditor's pages (the audit
// log and its export) come with the rest of the governance capability — until then this page
// says so, with no buttons that would do nothing.

import { hasCaseRole, type Me } from '../domain';
import { Organisation } from './Organisation';

export function Governance({ user }: { user: Me }) {
  const roles = user.memberships.filter((m) => m.role === 'owner' || m.role === 'auditor');
  const owned = roles.filter((m) => m.role === 'owner');
  const audited = roles.filter((m) => m.role === 'auditor' && !owned.some((o) => o.org_id === m.org_id));
  return (
    <section class={owned.length ? 'page' : 'page page-narrow'}>
      <h1 tabIndex={-1}>Your organisation</h1>
      {owned.map((m) => (
        <Organisation key={m.org_id} org={m} user={user} />
      ))}
      {audited.length > 0 && (
        <>
          <ul class="plain">
            {audited.map((m) => (
              <li>
                <strong>{m.org_name}</strong> — auditor
              </li>
            ))}
          </ul>
          <p>
            As an auditor you will read and export the audit log here. These pages arrive with Articula’s governance capability; they
            are not available yet.
          </p>
        </>
      )}
      <p class="muted">
        {hasCaseRole(user)
          ? 'Your other roles give you access to cases through the Cases and Board pages.'
          : 'Owners and auditors do not see case content: chats, prescriptions and files stay with the people working on each case.'}
      </p>
    </section>
  );
}
