import { describe, expect, it } from 'vitest';
import { riskReason } from '../../src/components/CaseBits';

describe('riskReason', () => {
  it("says the server's figures in words", () => {
    expect(riskReason(2, 1)).toBe('needs 2 days at this stage, 1 day left');
    expect(riskReason(1, 0)).toBe('needs 1 day at this stage, due today');
    expect(riskReason(4, -3)).toBe('needs 4 days at this stage, 3 days overdue');
  });
  it('says nothing without both figures', () => {
    expect(riskReason(null, 2)).toBeNull();
    expect(riskReason(3, undefined)).toBeNull();
  });
});
