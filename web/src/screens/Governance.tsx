// Owners and auditors see no case content (DESIGN §2). Owners manage their organisation here
// (members, roles, sessions, incident notices: Organisation.tsx); owners and auditors read,
// export and check the audit log on its own page (/audit: AuditLog.tsx).

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
            As an auditor you read, export and check the audit log of {audited.length === 1 ? 'this organisation' : 'these organisations'}:{' '}
            <a href="/audit">open the audit log</a>.
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
