// Case labels are de-identified (DESIGN §2): "Crown 11 — shade A2", a case code, initials. This
// guesses whether a label looks like a patient's name, so the client can warn before saving it.
// A guess only: it warns, the user decides ("Save anyway" is recorded in the audit, without the
// label). Two signs:
// - two or more capitalised words in a row ("Maria Lopez", "María de la Cruz") that are not
//   dental terms ("Upper Left Molar", "Corona Zirconia"), or
// - a word or words of the operator's name list (`ARTICULA_LABEL_NAME_LIST`, `GET /label-names`).
// Comparisons ignore case and accents (María = maria).

/** Restorations, materials, positions and other words labels are made of, English and Spanish
 * (singular; plurals in -s/-es are recognised). */
const DENTAL_TERMS = [
  // restorations and appliances
  'crown', 'bridge', 'veneer', 'implant', 'inlay', 'onlay', 'overlay', 'denture', 'partial', 'abutment', 'pontic',
  'post', 'core', 'splint', 'guard', 'night', 'nightguard', 'mouthguard', 'sport', 'retainer', 'aligner', 'tray',
  'bleaching', 'temporary', 'provisional', 'try', 'wax', 'up', 'model', 'mockup', 'surgical', 'guide', 'screw',
  'retained', 'cemented', 'hybrid', 'overdenture', 'bar', 'attachment', 'clasp', 'framework', 'reline', 'repair',
  'remake', 'full', 'arch', 'single', 'unit', 'units', 'tooth', 'teeth', 'quadrant', 'anterior', 'posterior',
  'upper', 'lower', 'left', 'right', 'maxillary', 'mandibular', 'molar', 'premolar', 'incisor', 'canine', 'central',
  'lateral', 'first', 'second', 'third', 'buccal', 'lingual', 'occlusal', 'mesial', 'distal',
  // materials and shades
  'zirconia', 'zirconium', 'emax', 'lithium', 'disilicate', 'feldspathic', 'pfm', 'porcelain', 'ceramic', 'metal',
  'gold', 'titanium', 'cocr', 'chrome', 'cobalt', 'pmma', 'acrylic', 'composite', 'resin', 'monolithic', 'layered',
  'shade', 'vita', 'bleach', 'translucent',
  // the case itself
  'case', 'rx', 'scan', 'design', 'rush', 'urgent', 'new', 'redo', 'check', 'dental', 'lab', 'clinic', 'patient',
  'doctor', 'dr', 'and', 'with', 'for', 'on', 'of', 'the', 'a',
  // Spanish
  'corona', 'puente', 'carilla', 'implante', 'incrustacion', 'pilar', 'perno', 'muñon', 'munon', 'protesis',
  'dentadura', 'sobredentadura', 'removible', 'fija', 'completa', 'parcial', 'ferula', 'descarga', 'nocturna',
  'guarda', 'retenedor', 'alineador', 'cubeta', 'blanqueamiento', 'provisional', 'encerado', 'modelo', 'prueba',
  'ajuste', 'reparacion', 'diente', 'dientes', 'arcada', 'cuadrante', 'superior', 'inferior', 'izquierda',
  'izquierdo', 'derecha', 'derecho', 'maxilar', 'mandibular', 'incisivo', 'canino', 'premolar', 'molar', 'central',
  'primer', 'segundo', 'tercer', 'zirconio', 'circonio', 'porcelana', 'ceramica', 'metal', 'oro', 'titanio',
  'resina', 'color', 'tono', 'caso', 'urgente', 'nuevo', 'clinica', 'laboratorio', 'paciente', 'doctora', 'dra',
  'con', 'para', 'sobre', 'y',
];

const TERMS = new Set(DENTAL_TERMS.map(fold));

/** Words that join the parts of a name ("María de la Cruz", "Van der Berg"): they neither break a
 * run of capitalised words nor count in it. */
const NAME_PARTICLES = new Set(['de', 'del', 'la', 'las', 'los', 'y', 'da', 'do', 'dos', 'das', 'di', 'van', 'von', 'der', 'den', 'le', 'du', 'bin', 'al', 'el']);

/** Lower case without accents: "María" → "maria". */
export function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

function isTerm(word: string): boolean {
  const w = fold(word);
  if (TERMS.has(w)) return true;
  if (w.endsWith('es') && TERMS.has(w.slice(0, -2))) return true;
  return w.endsWith('s') && TERMS.has(w.slice(0, -1));
}

/** "Maria", "O'Neil", "Ruiz-Pérez": an upper-case letter, then at least one lower-case letter and
 * letters, apostrophes or hyphens — not "PFM", "A2", "11" or "MR-0042". */
const CAPITALISED = /^\p{Lu}(?:['’]\p{Lu})?\p{Ll}+(?:['’-]?\p{L}+)*$/u;

/** The label's words: runs of letters, digits, apostrophes and hyphens. */
function words(label: string): string[] {
  return label.match(/[\p{L}\p{N}'’-]+/gu) ?? [];
}

export type NameSign = 'capitalised_words' | 'name_list';

/** Why `label` looks like a person's name, or null. `names`: the operator's list, folded or not. */
export function looksLikeName(label: string, names: Iterable<string> = []): NameSign | null {
  const ws = words(label);
  let run = 0;
  for (const w of ws) {
    if (NAME_PARTICLES.has(fold(w)) && run > 0) continue;
    if (CAPITALISED.test(w) && !isTerm(w)) {
      run++;
      if (run >= 2) return 'capitalised_words';
    } else {
      run = 0;
    }
  }
  const folded = ` ${ws.map(fold).join(' ')} `;
  for (const n of names) {
    const name = words(n).map(fold).join(' ');
    if (name && folded.includes(` ${name} `)) return 'name_list';
  }
  return null;
}

export const NAME_WARNING = "This looks like a patient's name. Use a case code or initials instead.";
