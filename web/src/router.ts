// A small history router: the server answers every app path with index.html (SPA fallback), so
// paths are real URLs (/cases/<id>) that survive a reload and can be shared.

import { signal } from '@preact/signals';

export const path = signal(location.pathname);
export const search = signal(location.search);

export function navigate(to: string, replace = false) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  const screenChanged = path.value !== location.pathname;
  path.value = location.pathname;
  search.value = location.search;
  // A new screen: move focus to its main heading for keyboard and screen-reader users (not when
  // only a tab or a filter changed: focus stays where the user is).
  if (screenChanged) queueMicrotask(() => document.querySelector<HTMLElement>('main h1')?.focus());
}

addEventListener('popstate', () => {
  path.value = location.pathname;
  search.value = location.search;
});

/** Follows in-app links without a page load (modified clicks keep the browser's behaviour). */
export function onLinkClick(e: MouseEvent) {
  const a = (e.target as HTMLElement).closest('a');
  if (!a || a.target || a.origin !== location.origin || e.defaultPrevented) return;
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}

/** Matches `/cases/:id`-style patterns; returns the params or null. */
export function match(pattern: string, p: string): Record<string, string> | null {
  const a = pattern.split('/');
  const b = p.replace(/\/+$/, '').split('/');
  if (a.length !== b.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return params;
}
