// The shell: who is signed in decides which screens exist; the path decides which one shows.

import { useEffect } from 'preact/hooks';
import { ConnectionStatus, OfflineBanner } from './components/ConnectionStatus';
import { NoticeBanner } from './components/NoticeBanner';
import { UnreadBadge } from './components/CaseBits';
import { hasCaseRole, hasRole, type Me, type Portal } from './domain';
import { realtime } from './live';
import { match, navigate, onLinkClick, path, search } from './router';
import { Account } from './screens/Account';
import { AuditLog, readableOrgs } from './screens/AuditLog';
import { Board } from './screens/Board';
import { CaseList } from './screens/CaseList';
import { CaseRoomScreen } from './screens/CaseRoom';
import { Governance } from './screens/Governance';
import { NewCase } from './screens/NewCase';
import { SignIn } from './screens/SignIn';
import { booting, me, portal, signOut } from './session';
import { startInbox, unreadTotal } from './state/inbox';

/** Clinic admins and lab staff start on their board; doctors on their cases; auditors on the
 * audit log; owners on their organisation. */
function home(user: Me): string {
  if (!hasCaseRole(user)) return hasRole(user, 'owner') || !hasRole(user, 'auditor') ? '/governance' : '/audit';
  if (hasRole(user, 'clinic_admin') || hasRole(user, 'lab_tech') || hasRole(user, 'lab_admin')) return '/board';
  return '/cases';
}

export function App() {
  const user = me.value;
  const p = path.value;

  // The socket lives while someone who sees cases is signed in, and for a case opened by someone
  // whose roles see none (a support account with support access; an owner managing access).
  const roomLink = p !== '/cases/new' ? match('/cases/:id', p) : null;
  const caseLink = roomLink !== null;
  useEffect(() => {
    if (user && hasCaseRole(user)) {
      realtime.start();
      startInbox(realtime, user.id);
    } else if (user && caseLink) {
      realtime.start();
    }
  }, [user, caseLink]);

  // Unread messages in the tab title, as chat apps do: `(3) Articula`.
  const total = user && hasCaseRole(user) ? unreadTotal.value : 0;
  useEffect(() => {
    document.title = total > 0 ? `(${total > 99 ? '99+' : total}) Articula` : 'Articula';
  }, [total]);

  if (booting.value) {
    return (
      <div class="splash" role="status">
        Loading Articula…
      </div>
    );
  }

  const signInAt = match('/:portal/sign-in', p);
  const signInPortal = signInAt && (signInAt.portal === 'clinic' || signInAt.portal === 'lab') ? (signInAt.portal as Portal) : null;

  if (!user) {
    if (!signInPortal) {
      // Come back here after signing in (a path, never case content).
      const next = p !== '/' ? `?next=${encodeURIComponent(p)}` : '';
      queueMicrotask(() => navigate(`/${portal.value}/sign-in${next}`, true));
      return null;
    }
    return <SignIn key={signInPortal} portal={signInPortal} />;
  }
  if (signInPortal || p === '/') {
    const next = new URLSearchParams(search.value).get('next');
    const to = next && next.startsWith('/') && !next.startsWith('//') ? next : home(user);
    queueMicrotask(() => navigate(to, true));
    return null;
  }

  return (
    <div class="shell" onClick={onLinkClick}>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      {roomLink && (
        <a class="skip-link" href="#composer-text" onClick={(e) => toComposer(e, roomLink.id)}>
          Skip to the message box
        </a>
      )}
      <Header user={user} />
      <OfflineBanner />
      <NoticeBanner userId={user.id} />
      <main id="main" tabIndex={-1}>
        <Route user={user} p={p} />
      </main>
    </div>
  );
}

/** The skip link to the message box: on a phone the chat may be another tab, so go there first. */
function toComposer(e: Event, caseId: string) {
  e.preventDefault();
  const focus = (tries: number) => {
    const box = document.getElementById('composer-text');
    if (box) box.focus();
    else if (tries > 0) requestAnimationFrame(() => focus(tries - 1));
  };
  if (!document.getElementById('composer-text')) navigate(`/cases/${caseId}`, true);
  focus(30);
}

function Route({ user, p }: { user: Me; p: string }) {
  if (p === '/account') return <Account />;
  // Everyone may ask for it; only owners and auditors get the log (the others are told why).
  if (p === '/audit') return <AuditLog user={user} />;
  if (!hasCaseRole(user)) {
    // A case link still opens: with support access it shows the case, to an owner of its
    // clinic its access (CaseRoom), to anyone else "Case unavailable".
    const link = p !== '/cases/new' ? match('/cases/:id', p) : null;
    if (link) return <CaseRoomScreen key={link.id} id={link.id} user={user} />;
    return <Governance user={user} />;
  }
  if (p === '/governance') return <Governance user={user} />;
  if (p === '/cases') return <CaseList user={user} />;
  if (p === '/cases/new') return <NewCase user={user} />;
  if (p === '/board') return <Board user={user} />;
  const c = match('/cases/:id', p);
  if (c) return <CaseRoomScreen key={c.id} id={c.id} user={user} />;
  return (
    <section class="page">
      <h1 tabIndex={-1}>Not found</h1>
      <p>
        There is nothing at this address. <a href={home(user)}>Go to the start page</a>.
      </p>
    </section>
  );
}

function Header({ user }: { user: Me }) {
  const p = path.value;
  const cases = hasCaseRole(user);
  const current = (prefix: string) => (p === prefix || p.startsWith(`${prefix}/`) ? 'page' : undefined);
  return (
    <header class={`topbar portal-${portal.value}`}>
      <div class="topbar-row">
        <a class="brand" href={home(user)}>
          Articula
        </a>
        <span class="portal-tag">{portal.value === 'lab' ? 'Lab portal' : 'Clinic portal'}</span>
        <span class="spacer" />
        {cases && <ConnectionStatus />}
        <span class="user-name" title={user.email}>
          {user.name}
        </span>
        <button type="button" class="btn btn-quiet" onClick={() => void signOut()}>
          Sign out
        </button>
      </div>
      <nav aria-label="Main" class="mainnav">
        {cases && (
          <a href="/cases" aria-current={p === '/cases' || (p.startsWith('/cases/') && p !== '/cases/new') ? 'page' : undefined}>
            Cases
            <UnreadBadge n={unreadTotal.value} label="unread messages" testid="unread-total" />
          </a>
        )}
        {cases && (
          <a href="/board" aria-current={current('/board')}>
            Board
          </a>
        )}
        {hasRole(user, 'doctor') && (
          <a href="/cases/new" aria-current={p === '/cases/new' ? 'page' : undefined}>
            New case
          </a>
        )}
        {(!cases || hasRole(user, 'owner')) && (
          <a href="/governance" aria-current={current('/governance')}>
            Organisation
          </a>
        )}
        {readableOrgs(user).length > 0 && (
          <a href="/audit" aria-current={current('/audit')}>
            Audit log
          </a>
        )}
        <a href="/account" aria-current={current('/account')}>
          Account
        </a>
      </nav>
    </header>
  );
}
