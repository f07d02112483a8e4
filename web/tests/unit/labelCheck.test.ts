// The "looks like a patient's name" heuristic behind the label warning (src/labelCheck.ts).

import { describe, expect, it } from 'vitest';
import { fold, looksLikeName } from '../../src/labelCheck';

describe('labels that look like a name', () => {
  it('warns for two or more capitalised words that are not dental terms', () => {
    expect(looksLikeName('Maria Lopez crown')).toBe('capitalised_words');
    expect(looksLikeName('crown for John Smith')).toBe('capitalised_words');
    expect(looksLikeName('María José Ruiz-Pérez, corona 11')).toBe('capitalised_words');
    expect(looksLikeName("Sean O'Neil bridge 14-16")).toBe('capitalised_words');
    expect(looksLikeName('Ana de la Cruz — carillas')).toBe('capitalised_words');
  });

  it('does not warn for restorations, positions, shades, codes and initials', () => {
    for (const label of [
      'Crown 11 A2',
      'Crown 11 — shade A2',
      'Bridge 14-16 Zirconia',
      'Upper Left Molar Crown',
      'Full Arch Implant Bridge',
      'Night Guard Upper',
      'Veneers 12 11 21 22 Emax',
      'PFM crown 36',
      'MR-0042 Implant Abutment',
      'Corona Zirconia Superior Derecha',
      'Carillas Emax 11 21',
      'Implante Inferior Izquierda',
      'Férula Nocturna Superior',
      'J.S. crown 11',
      'AB crown',
      'crown 11 maria', // one lower-case word alone is not a name (unless the list says so)
      'Smile Clinic rush',
    ]) {
      expect(looksLikeName(label), label).toBeNull();
    }
  });

  it('a single capitalised word is not a name by itself', () => {
    expect(looksLikeName('Lopez crown 11')).toBeNull();
    expect(looksLikeName('Crown Lopez 11')).toBeNull();
  });

  it("matches the operator's name list whole-word, ignoring case and accents", () => {
    const names = ['maría', 'lopez', 'ana belén'];
    expect(looksLikeName('crown 11 maria', names)).toBe('name_list');
    expect(looksLikeName('LOPEZ 36', names)).toBe('name_list');
    expect(looksLikeName('bridge for ana  Belen', names)).toBe('name_list');
    expect(looksLikeName('Crown 11 A2', names)).toBeNull();
    expect(looksLikeName('crown marian 11', names)).toBeNull(); // part of a word is not a match
    expect(looksLikeName('ana crown', names)).toBeNull(); // "ana belén" needs both words
  });

  it('folds accents and case', () => {
    expect(fold('María Pérez')).toBe('maria perez');
    expect(fold('MUÑON')).toBe('munon');
  });
});
