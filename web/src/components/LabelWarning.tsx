// The warning shown before saving a case label that looks like a patient's name (labelCheck.ts),
// with "Change it" and "Save anyway". Used by the new-case form and the case's details.

import { signal } from '@preact/signals';
import * as api from '../api';
import { looksLikeName, NAME_WARNING } from '../labelCheck';

/** The operator's name list, asked once per page (empty until it arrives, or without one). */
const names = signal<string[]>([]);
let asked = false;

export function loadLabelNames() {
  if (asked) return;
  asked = true;
  api.labelNames().then(
    (r) => (names.value = r.names),
    () => (asked = false),
  );
}

/** Whether saving `label` needs the warning first. */
export function needsWarning(label: string): boolean {
  return looksLikeName(label, names.value) !== null;
}

export function LabelWarning({ onChange, onKeep, busy }: { onChange: () => void; onKeep: () => void; busy: boolean }) {
  return (
    <div class="label-warning" role="alertdialog" aria-labelledby="label-warning-text" data-testid="label-warning">
      <p id="label-warning-text">
        <strong>{NAME_WARNING}</strong>
      </p>
      <div class="actions">
        <button type="button" class="btn btn-primary" onClick={onChange} disabled={busy}>
          Change it
        </button>
        <button type="button" class="btn btn-quiet" onClick={onKeep} disabled={busy}>
          Save anyway
        </button>
      </div>
    </div>
  );
}
