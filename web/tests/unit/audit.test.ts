// The audit log viewer's pure parts: the filters between the address and the API, and actions
// in words.

import { describe, expect, it } from 'vitest';
import { actionText, filtersFromSearch, filtersToSearch, localDayStart, NO_FILTERS, pageSize, targetText, toQuery } from '../../src/audit';

const USER = '01a24d51-ac53-71dd-9c06-ba84577fa942';

describe('audit filters', () => {
  it('round-trip through the address', () => {
    const f = { ...NO_FILTERS, user: USER, action: 'auth.login', from: '2026-03-01', to: '2026-03-02', limit: '25' };
    expect(filtersFromSearch(filtersToSearch(f))).toEqual(f);
    expect(filtersToSearch(NO_FILTERS)).toBe('');
  });

  it('turn dates into local days, the "to" day included (until = the next midnight)', () => {
    const q = toQuery({ ...NO_FILTERS, from: '2026-03-01', to: '2026-03-01' });
    expect(q).toEqual({ query: { from: localDayStart('2026-03-01'), until: localDayStart('2026-03-02') } });
    expect(localDayStart('2026-03-31', 1)).toBe(new Date(2026, 3, 1).getTime());
  });

  it('say in words what is wrong, and ask nothing of the server then', () => {
    expect(toQuery({ ...NO_FILTERS, user: 'bob' })).toHaveProperty('error');
    expect(toQuery({ ...NO_FILTERS, action: 'Auth Login' })).toHaveProperty('error');
    expect(toQuery({ ...NO_FILTERS, case: '12' })).toHaveProperty('error');
    expect(toQuery({ ...NO_FILTERS, from: '2026-03-02', to: '2026-03-01' })).toHaveProperty('error');
    expect(toQuery({ ...NO_FILTERS, user: USER.toUpperCase() })).toEqual({ query: { user: USER } });
  });

  it('offer a few page sizes only', () => {
    expect(pageSize({ ...NO_FILTERS, limit: '25' })).toBe(25);
    expect(pageSize({ ...NO_FILTERS, limit: '7' })).toBe(100);
  });
});

describe('audit entries in words', () => {
  it('name the common actions and fall back to the code', () => {
    expect(actionText('auth.login')).toBe('Signed in');
    expect(actionText('case.message_posted')).toBe('Message posted');
    expect(actionText('case.status_changed', { from: 'submitted', to: 'received' })).toBe('Case status changed: Submitted → Received');
    expect(actionText('something.new')).toBe('something.new');
  });

  it('shorten targets', () => {
    expect(targetText(`case:${USER}`)).toBe('Case 01a24d51…');
    expect(targetText('session:0123456789abcdef')).toBe('Session 01234567…');
    expect(targetText(null)).toBe('');
  });
});
