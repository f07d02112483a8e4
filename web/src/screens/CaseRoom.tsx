// One case: its conversation, Digital Rx, approvals and details, live.
// Wide screens show the chat beside the selected panel; narrow ones show one tab at a time.

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { DueDate, StatusBadge } from '../components/CaseBits';
import { caseAccess, hasRole, mayPrescribe, type CaseAccess, type Me } from '../domain';
import { realtime } from '../live';
import { navigate, search } from '../router';
import { useMedia } from '../components/useMedia';
import { room, type CaseRoom } from '../state/caseRoom';
import { seeing } from '../state/inbox';
import { labNames } from '../state/people';
import { Access, SupportBanner } from './case/Access';
import { Approvals } from './case/Approvals';
import { Chat } from './case/Chat';
import { Details } from './case/Details';
import { Files } from './case/Files';
import { RoomSearch } from './case/RoomSearch';
import { RxPanel } from './case/RxPanel';
import { StatusControl } from './case/StatusControl';

type Tab = 'chat' | 'files' | 'rx' | 'approvals' | 'details' | 'access';
/** `short` is what a phone shows (the accessible name stays `title`, which contains it). */
const TABS: { key: Tab; title: string; short?: string }[] = [
  { key: 'chat', title: 'Chat' },
  { key: 'files', title: 'Files' },
  { key: 'rx', title: 'Digital Rx', short: 'Rx' },
  { key: 'approvals', title: 'Approvals' },
  { key: 'details', title: 'Details' },
  { key: 'access', title: 'People & access', short: 'Access' },
];

export function CaseRoomScreen({ id, user }: { id: string; user: Me }) {
  const r = room(id, realtime);
  useEffect(() => {
    r.attach();
    seeing(id);
    return () => {
      seeing(null);
      r.detach();
    };
  }, [r]);

  const tabParam = new URLSearchParams(search.value).get('tab') as Tab | null;
  const [tab, setTabState] = useState<Tab>(TABS.some((t) => t.key === tabParam) ? tabParam! : 'chat');
  // Links within the room (an attachment shows its file) change the query: follow them.
  useEffect(() => {
    if (tabParam && TABS.some((t) => t.key === tabParam)) setTabState(tabParam);
  }, [tabParam]);
  const setTab = (t: Tab) => {
    setTabState(t);
    navigate(`/cases/${id}${t === 'chat' ? '' : `?tab=${t}`}`, true);
  };

  const wide = useMedia('(min-width: 1000px)');
  // Narrow screens fold the case header away once the user scrolls the panel or the
  // conversation (a wheel, a swipe, or a panel scrolled down); the toggle brings it back.
  const [collapsed, setCollapsed] = useState(false);
  const body = useRef<HTMLDivElement>(null);
  const loaded = r.state !== null;
  useEffect(() => {
    const el = body.current;
    if (wide || !el) return;
    const fold = () => setCollapsed(true);
    const onScroll = (e: Event) => {
      const t = e.target;
      if (t instanceof HTMLElement && t.classList.contains('pane') && t.scrollTop > 24) fold();
    };
    // Typing a message (the on-screen keyboard takes half the screen) folds it as well.
    const onFocus = (e: FocusEvent) => {
      if (e.target instanceof HTMLTextAreaElement && e.target.closest('.pane-chat')) fold();
    };
    el.addEventListener('focusin', onFocus);
    el.addEventListener('wheel', fold, { passive: true });
    el.addEventListener('touchmove', fold, { passive: true });
    el.addEventListener('scroll', onScroll, { passive: true, capture: true });
    return () => {
      el.removeEventListener('focusin', onFocus);
      el.removeEventListener('wheel', fold);
      el.removeEventListener('touchmove', fold);
      el.removeEventListener('scroll', onScroll, { capture: true });
    };
  }, [wide, loaded]);
  // The room fills what is visible of the window: with an on-screen keyboard open that is less
  // than the layout viewport, and the composer must stay above the keyboard.
  useEffect(() => {
    const vv = window.visualViewport;
    if (!vv) return;
    const root = document.documentElement;
    const fit = () => root.style.setProperty('--app-h', `${Math.round(vv.height)}px`);
    fit();
    vv.addEventListener('resize', fit);
    return () => {
      vv.removeEventListener('resize', fit);
      root.style.removeProperty('--app-h');
    };
  }, []);
  r.rev.value; // re-render on every applied batch
  const s = r.state;
  const view = r.view.value;

  if (r.lost.value) {
    // An owner of the case's clinic manages its access without seeing its content.
    if (hasRole(user, 'owner')) return <OwnerAccess id={id} user={user} lost={r.lost.value} />;
    return (
      <section class="page">
        <h1 tabIndex={-1}>Case unavailable</h1>
        <p>{r.lost.value}</p>
        <p>
          <a href="/cases">Back to the cases</a>
        </p>
      </section>
    );
  }
  if (!s) {
    return (
      <section class="page">
        <h1 tabIndex={-1} dir="auto">
          {view?.label ?? 'Case'}
        </h1>
        <p role="status">Loading the case…</p>
      </section>
    );
  }

  const grants = r.grants.value;
  // What the caller may do comes from the server with the case (`allowed`), read again after
  // every event that can change it.
  const access: CaseAccess = caseAccess(user, { doctor_id: s.doctorId, clinic_id: s.clinicId }, view?.allowed);
  const owner = user.memberships.some((m) => m.org_id === s.clinicId && m.role === 'owner');
  const mayManage = access.allowed.manage;
  // Wide screens keep the chat in view and switch the panel beside it; narrow ones show one tab.
  const tabs = wide ? TABS.filter((t) => t.key !== 'chat') : TABS;
  const shown: Tab = wide && tab === 'chat' ? 'rx' : tab;
  // Lab proposals waiting for this user's decision mark the Rx tab.
  const openProposals = mayPrescribe(access) ? Object.values(s.proposals).filter((p) => p.status === 'open').length : 0;

  return (
    <section class="room" aria-labelledby="case-title">
      <SupportBanner grants={grants} me={user.id} />
      <header class={`room-head${collapsed && !wide ? ' room-head-collapsed' : ''}`} data-testid="room-head">
        <div class="room-title">
          <a class="back" href="/cases" aria-label="Back to cases">
            ←
          </a>
          <h1 id="case-title" tabIndex={-1} dir="auto">
            {s.label}
          </h1>
          <button
            type="button"
            class="room-toggle"
            aria-expanded={collapsed ? 'false' : 'true'}
            aria-controls="room-extra"
            aria-label={collapsed ? 'Expand the case header' : 'Collapse the case header'}
            onClick={() => setCollapsed(!collapsed)}
          >
            <span aria-hidden="true">{collapsed ? '▾' : '▴'}</span>
          </button>
          <StatusBadge status={s.status} />
          <DueDate due={s.dueDate} atRisk={view?.at_risk ?? false} needed={view?.days_needed} left={view?.days_left} />
        </div>
        <div class="room-extra" id="room-extra">
          <div class="room-meta muted small">
            <bdi>{view?.doctor_name ?? r.name(s.doctorId, user.id)}</bdi>
            {view && <bdi>{view.clinic_name}</bdi>}
            <span>{s.labId ? (labNames.value[s.labId] ?? view?.lab_name ?? 'Lab') : 'No lab yet'}</span>
            <Presence r={r} me={user.id} />
          </div>
          <StatusControl r={r} access={access} />
          <RoomSearch r={r} />
        </div>
      </header>
      <div class="tabs" role="tablist" aria-label="Case sections">
        {tabs.map((t) => (
          <button
            type="button"
            role="tab"
            id={`tab-${t.key}`}
            class="tab"
            aria-selected={shown === t.key ? 'true' : 'false'}
            aria-controls={`panel-${t.key}`}
            tabIndex={shown === t.key ? 0 : -1}
            onClick={() => setTab(t.key)}
            onKeyDown={(e) => {
              // Arrow keys move between tabs (WAI-ARIA tabs pattern).
              const i = tabs.findIndex((x) => x.key === t.key);
              const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : -2;
              if (j === -2) return;
              const next = tabs[(j + tabs.length) % tabs.length];
              setTab(next.key);
              document.getElementById(`tab-${next.key}`)?.focus();
            }}
          >
            {t.short ? (
              <>
                <span class="tab-long">{t.title}</span>
                <span class="tab-short" aria-hidden="true">
                  {t.short}
                </span>
              </>
            ) : (
              t.title
            )}
            {t.key === 'approvals' && s.status === 'awaiting_approval' && <span class="tab-dot" aria-label="(waiting for a decision)" />}
            {t.key === 'rx' && openProposals > 0 && (
              <span class="tab-count" data-testid="rx-tab-badge" aria-label={`(${openProposals} lab proposal${openProposals === 1 ? '' : 's'} to decide)`}>
                {openProposals}
              </span>
            )}
          </button>
        ))}
      </div>
      <div class={`room-body${wide ? ' room-wide' : ''}`} ref={body}>
        {(wide || shown === 'chat') && (
          <div id="panel-chat" role={wide ? 'region' : 'tabpanel'} aria-label={wide ? 'Chat' : undefined} aria-labelledby={wide ? undefined : 'tab-chat'} class="pane pane-chat">
            <Chat r={r} user={user} access={access} />
          </div>
        )}
        {shown !== 'chat' && (
          <div id={`panel-${shown}`} role="tabpanel" aria-labelledby={`tab-${shown}`} class="pane pane-side">
            {shown === 'files' && <Files r={r} user={user} access={access} />}
            {shown === 'rx' && <RxPanel r={r} user={user} access={access} />}
            {shown === 'approvals' && <Approvals r={r} user={user} access={access} />}
            {shown === 'details' && <Details r={r} user={user} access={access} />}
            {shown === 'access' && (
              <Access
                caseId={id}
                user={user}
                grants={grants}
                reload={() => r.loadGrants()}
                mayManage={mayManage}
                owner={owner}
                doctor={access.doctor}
              />
            )}
          </div>
        )}
      </div>
    </section>
  );
}

function Presence({ r, me }: { r: CaseRoom; me: string }) {
  const others = r.presence.value.filter((u) => u !== me);
  if (!others.length) return null;
  return (
    <span class="presence" data-testid="presence">
      <span class="presence-dot" aria-hidden="true" />
      Here now: {others.map((u) => r.name(u, me)).join(', ')}
    </span>
  );
}


/** An owner's view of a case they do not see: its grants, and giving or revoking them (the
 * server lets owners of the case's clinic read the grants; anyone else gets `not_found`). */
function OwnerAccess({ id, user, lost }: { id: string; user: Me; lost: string }) {
  const [grants, setGrants] = useState<api.GrantView[] | null | 'none'>(null);
  const load = () =>
    api.grants(id).then(
      (g) => setGrants(g),
      () => setGrants('none'),
    );
  useEffect(() => {
    void load();
  }, [id]);
  if (grants === null) return <p role="status">Loading…</p>;
  if (grants === 'none') {
    return (
      <section class="page">
        <h1 tabIndex={-1}>Case unavailable</h1>
        <p>{lost}</p>
        <p>
          <a href="/cases">Back to the cases</a>
        </p>
      </section>
    );
  }
  return (
    <section class="page page-narrow">
      <h1 tabIndex={-1}>Case access</h1>
      <p class="muted">As an owner of the clinic you manage who may see this case; you do not see its content.</p>
      <SupportBanner grants={grants} me={user.id} />
      <Access caseId={id} user={user} grants={grants} reload={load} mayManage owner doctor={false} />
    </section>
  );
}
