// Names for user ids. The socket names people by id only (actors, presence, receipts); the REST
// API gives the signed-in user's name, each case's doctor's name, and the names of everyone who
// can see a case (`GET /cases/{id}/participants`). In memory only.

import { signal } from '@preact/signals';
import type { CaseView, Participant } from '../domain';

export const people = signal<Record<string, string>>({});
export const labNames = signal<Record<string, string>>({});

export function learn(id: string, name: string) {
  if (people.value[id] !== name) people.value = { ...people.value, [id]: name };
}

export function learnFromCases(cases: CaseView[]) {
  let p = people.value;
  let l = labNames.value;
  for (const c of cases) {
    if (p[c.doctor_id] !== c.doctor_name) p = { ...p, [c.doctor_id]: c.doctor_name };
    if (c.lab_id && c.lab_name && l[c.lab_id] !== c.lab_name) l = { ...l, [c.lab_id]: c.lab_name };
  }
  people.value = p;
  labNames.value = l;
}

export function learnParticipants(list: Participant[]) {
  let p = people.value;
  for (const x of list) if (p[x.user_id] !== x.name) p = { ...p, [x.user_id]: x.name };
  people.value = p;
}

export function learnLabs(labs: { id: string; name: string }[]) {
  const l = { ...labNames.value };
  for (const lab of labs) l[lab.id] = lab.name;
  labNames.value = l;
}

/** "You", a known name, or "Member ·1a2b" (the end of the id is its random part). */
export function nameOf(id: string, meId: string | undefined): string {
  if (id === meId) return 'You';
  return people.value[id] ?? `Member ·${id.replace(/-/g, '').slice(-4)}`;
}

export function reset() {
  people.value = {};
  labNames.value = {};
}
