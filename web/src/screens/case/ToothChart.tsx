// The FDI tooth chart (permanent teeth 11–48), as the dentist faces the patient: the patient's
// right on the left, the midline between 11 and 21 on every screen.

import type { CaseState } from '../../state/caseFold';
import { displayValue } from '../../domain';

/** `pos` is where the quadrant sits on screen (top/bottom, left/right). */
const QUADRANTS: { label: string; pos: string; teeth: number[] }[] = [
  { label: 'Upper right (1)', pos: 'tl', teeth: [18, 17, 16, 15, 14, 13, 12, 11] },
  { label: 'Upper left (2)', pos: 'tr', teeth: [21, 22, 23, 24, 25, 26, 27, 28] },
  { label: 'Lower right (4)', pos: 'bl', teeth: [48, 47, 46, 45, 44, 43, 42, 41] },
  { label: 'Lower left (3)', pos: 'br', teeth: [31, 32, 33, 34, 35, 36, 37, 38] },
];

const ABBREVIATIONS: Record<string, string> = {
  crown: 'CR',
  bridge_abutment: 'BA',
  bridge_pontic: 'BP',
  veneer: 'VE',
  inlay: 'IN',
  onlay: 'ON',
  implant_crown: 'IC',
  implant_abutment: 'IA',
  denture: 'DE',
  partial_denture: 'PD',
  temporary: 'TE',
  night_guard: 'NG',
};

/** The value a field shows: the user's unsaved change if any, else the saved one. */
export type ValueOf = (field: string) => string | null;

export function ToothChart({
  value,
  selected,
  onSelect,
  changed,
}: {
  state: CaseState;
  value: ValueOf;
  selected: number | null;
  onSelect(tooth: number): void;
  /** Teeth with unsaved changes. */
  changed: Set<number>;
}) {
  // On a phone the sixteen teeth of an arch share one row, so each is narrower than a finger
  // (about 20 px): the same choice is also a full-width list below the chart.
  const all = QUADRANTS.flatMap((q) => q.teeth).sort((x, y) => x - y);
  return (
    <>
    <div class="chart" role="group" aria-label="Tooth chart (FDI)">
      {QUADRANTS.map((q) => (
        <div class={`quadrant quadrant-${q.pos}`} role="group" aria-label={q.label}>
          {q.teeth.map((t) => {
            const restoration = value(`teeth.${t}.restoration`);
            const hasAny = ['restoration', 'material', 'shade', 'margin', 'occlusion', 'notes'].some((a) => value(`teeth.${t}.${a}`));
            const summary = ['restoration', 'material', 'shade']
              .map((a) => value(`teeth.${t}.${a}`))
              .filter(Boolean)
              .map((v) => displayValue('', v))
              .join(', ');
            return (
              <button
                type="button"
                class={`tooth${hasAny ? ' tooth-set' : ''}${selected === t ? ' tooth-selected' : ''}${changed.has(t) ? ' tooth-changed' : ''}`}
                aria-pressed={selected === t}
                aria-label={`Tooth ${t}${summary ? `: ${summary}` : ''}${changed.has(t) ? ' (unsaved changes)' : ''}`}
                data-tooth={t}
                onClick={() => onSelect(t)}
              >
                <span class="tooth-num">{t}</span>
                <span class="tooth-tag" aria-hidden="true">
                  {restoration ? (ABBREVIATIONS[restoration] ?? '•') : hasAny ? '•' : ''}
                </span>
              </button>
            );
          })}
        </div>
      ))}
    </div>
    <div class="field tooth-picker">
      <label for="tooth-pick">Tooth</label>
      <select
        id="tooth-pick"
        value={selected === null ? '' : String(selected)}
        onChange={(e) => {
          const t = Number(e.currentTarget.value);
          if (t) onSelect(t);
        }}
      >
        <option value="">Choose a tooth…</option>
        {all.map((t) => {
          const summary = ['restoration', 'material', 'shade']
            .map((a) => value(`teeth.${t}.${a}`))
            .filter(Boolean)
            .map((v) => displayValue('', v))
            .join(', ');
          return (
            <option value={String(t)}>
              {t}
              {summary ? ` — ${summary}` : ''}
            </option>
          );
        })}
      </select>
    </div>
    </>
  );
}
