//! Every delivery is checked against the seq it should have: per socket and case, events must
//! arrive as `since+1, since+2, …` with no gap, no repeat and no reordering.

use std::collections::BTreeSet;

/// Counts of what went wrong on one socket's view of one case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Seqs that never arrived.
    pub lost: u64,
    /// Seqs that arrived more than once.
    pub duplicated: u64,
    /// Seqs that arrived after a later one.
    pub out_of_order: u64,
}

impl std::ops::AddAssign for Faults {
    fn add_assign(&mut self, o: Self) {
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
    }
}

/// The expected-seq check of one socket on one case.
#[derive(Debug, Default)]
pub struct SeqCheck {
    /// The highest seq seen (contiguous or not).
    last: u64,
    /// Seqs skipped so far that may still arrive late.
    missing: BTreeSet<u64>,
    faults: Faults,
}

impl SeqCheck {
    /// A check for a socket that already has everything up to `since`.
    pub fn new(since: u64) -> Self {
        Self { last: since, ..Self::default() }
    }

    /// The highest seq seen; the `since` to resume with once nothing is missing.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Whether every seq up to `last` arrived.
    pub fn contiguous(&self) -> bool {
        self.missing.is_empty()
    }

    /// The missing seqs, as ranges (for a diagnosis: which part of the stream a socket lacks).
    pub fn missing_ranges(&self, max: usize) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut it = self.missing.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end += 1;
                it.next();
            }
            if out.len() == max {
                out.push("…".into());
                break;
            }
            out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        }
        out.join(",")
    }

    /// Records one delivered seq.
    pub fn observe(&mut self, seq: u64) {
        if seq == self.last + 1 {
            self.last = seq;
        } else if seq > self.last {
            self.missing.extend(self.last + 1..seq);
            self.last = seq;
        } else if self.missing.remove(&seq) {
            self.faults.out_of_order += 1;
        } else {
            self.faults.duplicated += 1;
        }
    }

    /// The faults, counting as lost whatever is still missing and everything up to `head`.
    pub fn finish(&self, head: u64) -> Faults {
        let mut f = self.faults;
        f.lost += self.missing.len() as u64 + head.saturating_sub(self.last);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(since: u64, seqs: &[u64], head: u64) -> Faults {
        let mut c = SeqCheck::new(since);
        for s in seqs {
            c.observe(*s);
        }
        c.finish(head)
    }

    #[test]
    fn in_order_is_clean() {
        assert_eq!(run(3, &[4, 5, 6], 6), Faults::default());
    }

    #[test]
    fn gaps_repeats_and_reorders_are_told_apart() {
        assert_eq!(run(0, &[1, 3], 3), Faults { lost: 1, duplicated: 0, out_of_order: 0 });
        assert_eq!(run(0, &[1, 3, 2], 3), Faults { lost: 0, duplicated: 0, out_of_order: 1 });
        assert_eq!(run(0, &[1, 2, 2, 1], 2), Faults { lost: 0, duplicated: 2, out_of_order: 0 });
        assert_eq!(run(0, &[1], 4), Faults { lost: 3, duplicated: 0, out_of_order: 0 });
        assert_eq!(run(5, &[5], 5), Faults { lost: 0, duplicated: 1, out_of_order: 0 });
    }
}
