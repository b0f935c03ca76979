//! Crash points: which images a crash may leave, and whether any of them
//! breaks a promise.
//!
//! At a crash point every word of the pool holds one of its candidates
//! ([`Memory::crash_candidates`]), chosen independently (8-byte atomicity,
//! nothing larger): the crash images are the Cartesian product of the
//! candidate sets. [`images`] enumerates that product literally (bounded).
//!
//! The rules of [`Checker::check_word`] look at one word at a time, so an
//! image breaks a promise exactly when one of its words holds a bad
//! candidate. [`CrashTracker`] therefore judges every candidate of every
//! word once, and knows the verdict for the whole product without building
//! it. It is incremental: only words whose candidates or promises changed
//! since the last crash point are judged again.

use std::collections::{BTreeMap, BTreeSet};

use crate::checker::{Checker, Problem};
use crate::memory::{Candidate, Memory, Word};

/// Images counted per crash point at most (the count is a report, the
/// verdict covers all of them).
pub const IMAGE_COUNT_CAP: u64 = 1 << 16;

/// A broken promise found at a crash point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Pool offset of the word.
    pub word: u64,
    /// The bad value and where it comes from.
    pub candidate: Candidate,
    /// What is wrong.
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct WordState {
    ncand: usize,
    bad: Option<Finding>,
}

/// The verdicts of every word that was ever written, kept up to date.
#[derive(Clone, Debug, Default)]
pub struct CrashTracker {
    words: BTreeMap<u64, WordState>,
    bad: BTreeSet<u64>,
    multi: BTreeMap<u64, usize>,
    judged: u64,
}

impl CrashTracker {
    /// No word tracked yet.
    pub fn new() -> CrashTracker {
        CrashTracker::default()
    }

    /// Judge `changed` words again.
    pub fn update(&mut self, mem: &Memory, checker: &Checker, changed: &BTreeSet<u64>) {
        for &w in changed {
            let cands = mem.crash_candidates(w);
            self.judged = self
                .judged
                .saturating_add(u64::try_from(cands.len()).unwrap_or(u64::MAX));
            let bad = cands.iter().find_map(|c| {
                checker.check_word(w, &c.value).map(|problem| Finding {
                    word: w,
                    candidate: *c,
                    problem,
                })
            });
            if bad.is_some() {
                self.bad.insert(w);
            } else {
                self.bad.remove(&w);
            }
            if cands.len() > 1 {
                self.multi.insert(w, cands.len());
            } else {
                self.multi.remove(&w);
            }
            self.words.insert(
                w,
                WordState {
                    ncand: cands.len(),
                    bad,
                },
            );
        }
    }

    /// Whether some image of the current crash point breaks a promise.
    pub fn violated(&self) -> bool {
        !self.bad.is_empty()
    }

    /// The first (lowest-offset) broken promise.
    pub fn first_finding(&self) -> Option<&Finding> {
        let w = self.bad.iter().next()?;
        self.words.get(w)?.bad.as_ref()
    }

    /// Every broken promise (one per word).
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.bad
            .iter()
            .filter_map(|w| self.words.get(w).and_then(|s| s.bad.as_ref()))
    }

    /// Candidate values judged so far (each changed word's candidates, at
    /// every crash point where it changed).
    pub fn judged(&self) -> u64 {
        self.judged
    }

    /// Words with more than one candidate (data in flight).
    pub fn in_flight_words(&self) -> usize {
        self.multi.len()
    }

    /// Number of distinct crash images at this point, capped at `cap`.
    pub fn image_count(&self, cap: u64) -> u64 {
        let mut n: u64 = 1;
        for &k in self.multi.values() {
            n = n.saturating_mul(k as u64);
            if n >= cap {
                return cap;
            }
        }
        n
    }

    /// Candidates of the in-flight words of the current point (for
    /// literal enumeration).
    pub fn in_flight(&self, mem: &Memory) -> Vec<(u64, Vec<Candidate>)> {
        self.multi
            .keys()
            .map(|&w| (w, mem.crash_candidates(w)))
            .collect()
    }

    /// Words tracked (ever written or changed).
    pub fn tracked_words(&self) -> usize {
        self.words.len()
    }

    /// Judge `words` from scratch and compare with the incremental state:
    /// `Err` names the first word where they differ (a bug in the
    /// simulator's change tracking).
    pub fn verify(
        &self,
        mem: &Memory,
        checker: &Checker,
        words: impl Iterator<Item = u64>,
    ) -> Result<(), String> {
        for w in words {
            let cands = mem.crash_candidates(w);
            let bad = cands
                .iter()
                .any(|c| checker.check_word(w, &c.value).is_some());
            let (ncand, tracked_bad) = match self.words.get(&w) {
                Some(s) => (s.ncand, s.bad.is_some()),
                None => (1, false),
            };
            if ncand != cands.len() || bad != tracked_bad {
                return Err(format!(
                    "word {w}: tracked {ncand} candidates (bad: {tracked_bad}), \
                     recomputed {} (bad: {bad}): {cands:?}",
                    cands.len()
                ));
            }
        }
        Ok(())
    }

    /// The candidate count of word `w` as tracked (0 if untracked).
    pub fn candidates_of(&self, w: u64) -> usize {
        self.words.get(&w).map_or(0, |s| s.ncand)
    }
}

/// Enumerate crash images over in-flight words literally: each item lists,
/// for every word, the value it holds in that image. At most `cap` images,
/// in odometer order (the first is every word's first candidate).
pub fn images(words: &[(u64, Vec<Candidate>)], cap: usize) -> Vec<Vec<(u64, Word)>> {
    let mut out = Vec::new();
    if words.iter().any(|(_, c)| c.is_empty()) {
        return out;
    }
    let mut pick = vec![0usize; words.len()];
    loop {
        if out.len() >= cap {
            return out;
        }
        out.push(
            words
                .iter()
                .zip(&pick)
                .filter_map(|((w, c), &i)| c.get(i).map(|c| (*w, c.value)))
                .collect(),
        );
        // Advance the odometer.
        let mut carry = true;
        for (p, (_, c)) in pick.iter_mut().zip(words) {
            if !carry {
                break;
            }
            *p += 1;
            if *p < c.len() {
                carry = false;
            } else {
                *p = 0;
            }
        }
        if carry {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Source, LINE};
    use crate::platform::platform;
    use rpmem_core::flush::FlushOps;
    use rpmem_core::persist::CallKind;

    #[test]
    fn enumeration_keeps_every_word_whole() {
        // Two words of one unflushed 16-byte write: 4 images, each word
        // entirely old or entirely new, never a mix inside a word.
        let mut m = Memory::new(platform("adr-ddio").unwrap(), 4096).unwrap();
        m.nic_write(64, &[9; 16]);
        let words: Vec<_> = [64u64, 72]
            .iter()
            .map(|&w| (w, m.crash_candidates(w)))
            .collect();
        let imgs = images(&words, 100);
        assert_eq!(imgs.len(), 4);
        let mut seen: Vec<Vec<Word>> = imgs
            .iter()
            .map(|img| img.iter().map(|(_, v)| *v).collect())
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                vec![[0; 8], [0; 8]],
                vec![[0; 8], [9; 8]],
                vec![[9; 8], [0; 8]],
                vec![[9; 8], [9; 8]],
            ]
        );
        for img in &imgs {
            for (_, v) in img {
                assert!(v.iter().all(|&b| b == v[0]), "torn word {v:?}");
            }
        }
    }

    #[test]
    fn enumeration_is_bounded() {
        let c = |v: u8| Candidate {
            value: [v; 8],
            source: Source::Media,
        };
        let words: Vec<_> = (0..10u64)
            .map(|w| (w * 8, vec![c(0), c(1), c(2)]))
            .collect();
        assert_eq!(images(&words, 50).len(), 50);
        assert_eq!(images(&words[..2], 50).len(), 9);
        assert!(images(&[(0, vec![])], 5).is_empty());
    }

    #[test]
    fn tracker_sees_loss_and_its_repair() {
        let mut m = Memory::new(platform("adr-ddio").unwrap(), 4096).unwrap();
        let mut c = Checker::new(true);
        let mut t = CrashTracker::new();
        let id = c.issue(0, CallKind::Persist, true, 64, LINE, 1).unwrap();
        m.nic_write(64, &[id; 64]);
        c.call_succeeded(0, CallKind::Persist, Some(id), 2);
        let mut changed = m.take_changed();
        changed.extend(c.take_changed());
        t.update(&m, &c, &changed);
        // Promised but only in the cache: loss is possible.
        assert!(t.violated());
        assert_eq!(t.in_flight_words(), 8);
        assert_eq!(t.image_count(IMAGE_COUNT_CAP), 256);
        assert_eq!(t.first_finding().unwrap().word, 64);
        m.flush_line(64);
        m.fence();
        let changed = m.take_changed();
        t.update(&m, &c, &changed);
        assert!(!t.violated());
        assert_eq!(t.image_count(IMAGE_COUNT_CAP), 1);
    }

    #[test]
    fn literal_enumeration_agrees_with_word_verdicts() {
        let mut m = Memory::new(platform("adr-ddio").unwrap(), 4096).unwrap();
        let mut c = Checker::new(true);
        let mut t = CrashTracker::new();
        let a = c.issue(0, CallKind::Persist, true, 0, 16, 1).unwrap();
        let b = c.issue(1, CallKind::Flush, true, 8, 16, 2).unwrap();
        m.nic_write(0, &[a; 16]);
        m.flush_line(0);
        m.nic_write(8, &[b; 16]);
        c.call_succeeded(0, CallKind::Persist, Some(a), 3);
        let mut changed = m.take_changed();
        changed.extend(c.take_changed());
        t.update(&m, &c, &changed);
        let words = t.in_flight(&m);
        let imgs = images(&words, 10_000);
        assert_eq!(imgs.len() as u64, t.image_count(IMAGE_COUNT_CAP));
        let any_bad = imgs
            .iter()
            .any(|img| img.iter().any(|(w, v)| c.check_word(*w, v).is_some()));
        assert_eq!(any_bad, t.violated());
        assert!(
            any_bad,
            "word 0 may still be old: the write-back is not fenced"
        );
    }
}
