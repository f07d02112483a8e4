// Owners and auditors see no case content (DESIGN §2). Their pages — members and roles,
// revocation, grants, the audit log and its export, data export, account closure — come with the
// governance capability; until then this page says so, with no buttons that would do nothing.

import { hasCaseRole, type Me } from '../domain';

export function Governance({ user }: { user: Me }) {
  const roles = user.memberships.filter((m) => m.role === 'owner' || m.role === 'auditor');
  return (
    <section class="page page-narrow">
      <h1 tabIndex={-1}>Your organisation</h1>
      <ul class="plain">
        {roles.map((m) => (
          <li>
            <strong>{m.org_name}</strong> — {m.role === 'owner' ? 'owner' : 'auditor'}
          </li>
        ))}
      </ul>
      <p>
        {roles.some((m) => m.role === 'owner')
          ? 'As an owner you will manage members and their roles, revoke access, review and export the audit log, export all data and close the account here.'
          : 'As an auditor you will read and export the audit log here.'}{' '}
        These pages arrive with Articula’s governance capability; they are not available yet.
      </p>
      <p class="muted">
        {hasCaseRole(user)
          ? 'Your other roles give you access to cases through the Cases and Board pages.'
          : 'Owners and auditors do not see case content: chats, prescriptions and files stay with the people working on each case.'}
      </p>
    </section>
  );
}
