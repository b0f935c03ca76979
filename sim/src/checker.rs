//! What a crash may legally leave in the pool, and the judge of one word.
//!
//! Every write the workload issues gets an id 1..=255 and fills its range
//! with that id, so every byte of a crash image names the write it came
//! from (0: the initial content). The rules, for each byte `b`:
//!
//! * Let `D` be the writes covering `b` that a call which **returned
//!   success** promised durable: on platforms where plain persists are
//!   durable, a successful persist, deep persist or drain on a lane promises
//!   every write issued on that lane so far; where only deep persists are
//!   (volatile write-pending queue), a deep persist promises its own write.
//! * A promised write `W` is *superseded* by a promised `W'` when `W'` was
//!   issued after `W` was promised, or issued after `W` on the same lane
//!   (program order of a lane).
//! * `b` may hold: a promised write that is not superseded; a write never
//!   promised unless a later write of its own lane was promised; the
//!   initial value only when `D` is empty.
//!
//! And for each aligned 8-byte word inside the range of a non-RELAXED
//! persist or flush `W`: the word must not mix bytes of `W` with bytes of a
//! write that is older than `W` (initial content, an earlier write of `W`'s
//! lane, or a write promised before `W` was issued): it must not be half
//! old and half new.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rpmem_core::persist::CallKind;

use crate::memory::{Word, WORD};

/// Most writes one run may issue (ids are bytes, 0 is the initial value).
pub const MAX_WRITES: usize = 255;

/// One write the workload issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteRec {
    /// Id, 1..=255: the value of every byte it writes.
    pub id: u8,
    /// Lane it was issued on.
    pub lane: u32,
    /// The call that carried it.
    pub kind: CallKind,
    /// RELAXED flag (deep persists count as relaxed: no atomicity promise).
    pub relaxed: bool,
    /// Pool offset.
    pub offset: u64,
    /// Length.
    pub len: u64,
    /// Step at which the call was issued.
    pub issued: u64,
    /// Step at which a successful call promised it durable.
    pub promised: Option<u64>,
}

impl WriteRec {
    fn covers(&self, b: u64) -> bool {
        b >= self.offset && b - self.offset < self.len
    }

    fn covers_word(&self, w: u64) -> bool {
        self.covers(w) && self.covers(w.saturating_add(WORD - 1))
    }

    fn atomic(&self) -> bool {
        !self.relaxed && matches!(self.kind, CallKind::Persist | CallKind::Flush)
    }
}

impl fmt::Display for WriteRec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match self.kind {
            CallKind::Persist => "persist",
            CallKind::DeepPersist => "deep_persist",
            CallKind::Flush => "flush",
            CallKind::Drain => "drain",
            CallKind::Read => "read",
        };
        write!(
            f,
            "write #{} (lane {} {}{} [{}, +{}) issued at step {}",
            self.id,
            self.lane,
            call,
            if self.relaxed && self.kind != CallKind::DeepPersist {
                " RELAXED"
            } else {
                ""
            },
            self.offset,
            self.len,
            self.issued
        )?;
        match self.promised {
            Some(s) => write!(f, ", promised durable at step {s})"),
            None => write!(f, ", never promised)"),
        }
    }
}

/// What is wrong with a word after a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A byte holds its initial value although a write to it was promised.
    Lost {
        /// Pool offset of the byte.
        byte: u64,
        /// The newest promised write it should hold.
        promised: WriteRec,
    },
    /// A byte holds a write that a promised one superseded.
    Stale {
        /// Pool offset of the byte.
        byte: u64,
        /// The write it holds.
        got: WriteRec,
        /// The promised write that supersedes it.
        newer: WriteRec,
    },
    /// A byte holds a value no write to it produced.
    Foreign {
        /// Pool offset of the byte.
        byte: u64,
        /// The value.
        value: u8,
    },
    /// A non-RELAXED write's word is half new, half old.
    Torn {
        /// Pool offset of the word.
        word: u64,
        /// The non-RELAXED write.
        new: WriteRec,
        /// The older write (None: initial content) in the same word.
        old: Option<WriteRec>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Lost { byte, promised } => write!(
                f,
                "byte {byte} holds its initial value, but {promised} covers it"
            ),
            Problem::Stale { byte, got, newer } => {
                write!(f, "byte {byte} holds {got}, superseded by {newer}")
            }
            Problem::Foreign { byte, value } => write!(
                f,
                "byte {byte} holds {value}, which no write to that byte produced"
            ),
            Problem::Torn { word, new, old } => match old {
                Some(old) => write!(
                    f,
                    "8-byte word {word} is torn: part {new}, part the older {old}"
                ),
                None => write!(
                    f,
                    "8-byte word {word} is torn: part {new}, part initial content"
                ),
            },
        }
    }
}

/// The run issued more writes than ids exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a run may issue at most {MAX_WRITES} writes (each byte value names its write)")]
pub struct TooManyWrites;

/// Write history and promises of one run.
#[derive(Clone, Debug)]
pub struct Checker {
    plain_durable: bool,
    writes: Vec<WriteRec>,
    by_word: BTreeMap<u64, Vec<u8>>,
    open: BTreeMap<u32, Vec<u8>>,
    changed: BTreeSet<u64>,
}

fn words(offset: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = offset & !(WORD - 1);
    let end = offset.saturating_add(len);
    (0..)
        .map(move |i: u64| first.saturating_add(i.saturating_mul(WORD)))
        .take_while(move |&w| w < end)
}

impl Checker {
    /// A checker; `plain_durable`: whether plain persists promise
    /// durability on the platform ([`crate::platform::Platform::plain_persist_durable`]).
    pub fn new(plain_durable: bool) -> Checker {
        Checker {
            plain_durable,
            writes: Vec::new(),
            by_word: BTreeMap::new(),
            open: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }

    /// Every write issued so far.
    pub fn writes(&self) -> &[WriteRec] {
        &self.writes
    }

    /// The write with id `id`.
    pub fn write(&self, id: u8) -> Option<&WriteRec> {
        self.writes.get(usize::from(id).checked_sub(1)?)
    }

    /// Words whose verdict may have changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.changed)
    }

    /// Record a write issued at `step`; returns its id (the byte value to
    /// fill its range with).
    pub fn issue(
        &mut self,
        lane: u32,
        kind: CallKind,
        relaxed: bool,
        offset: u64,
        len: u64,
        step: u64,
    ) -> Result<u8, TooManyWrites> {
        if self.writes.len() >= MAX_WRITES {
            return Err(TooManyWrites);
        }
        let id = u8::try_from(self.writes.len().saturating_add(1)).map_err(|_| TooManyWrites)?;
        self.writes.push(WriteRec {
            id,
            lane,
            kind,
            relaxed,
            offset,
            len,
            issued: step,
            promised: None,
        });
        for w in words(offset, len) {
            self.by_word.entry(w).or_default().push(id);
            self.changed.insert(w);
        }
        self.open.entry(lane).or_default().push(id);
        Ok(id)
    }

    /// A call on `lane` returned success at `step`; `own` is the write it
    /// carried, if any.
    pub fn call_succeeded(&mut self, lane: u32, kind: CallKind, own: Option<u8>, step: u64) {
        let promised: Vec<u8> = match kind {
            CallKind::Persist | CallKind::Drain | CallKind::DeepPersist if self.plain_durable => {
                self.open.remove(&lane).unwrap_or_default()
            }
            CallKind::DeepPersist => {
                let Some(id) = own else { return };
                if let Some(open) = self.open.get_mut(&lane) {
                    open.retain(|&x| x != id);
                }
                vec![id]
            }
            _ => return,
        };
        for id in promised {
            let Some(idx) = usize::from(id).checked_sub(1) else {
                continue;
            };
            let Some(w) = self.writes.get_mut(idx) else {
                continue;
            };
            if w.promised.is_none() {
                w.promised = Some(step);
                let (o, l) = (w.offset, w.len);
                self.changed.extend(words(o, l));
            }
        }
    }

    fn recs_at(&self, w: u64) -> Vec<WriteRec> {
        self.by_word
            .get(&w)
            .map(|ids| {
                ids.iter()
                    .filter_map(|&id| self.write(id).copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Judge one post-crash value of word `w` (8-aligned). `None`: legal.
    pub fn check_word(&self, w: u64, value: &Word) -> Option<Problem> {
        let recs = self.recs_at(w);
        for (i, &v) in value.iter().enumerate() {
            let b = w.saturating_add(i as u64);
            if let Some(p) = self.check_byte(&recs, b, v) {
                return Some(p);
            }
        }
        self.check_torn(&recs, w, value)
    }

    fn check_byte(&self, recs: &[WriteRec], b: u64, v: u8) -> Option<Problem> {
        let promised: Vec<&WriteRec> = recs
            .iter()
            .filter(|r| r.covers(b) && r.promised.is_some())
            .collect();
        if v == 0 {
            // The newest promise, for the report.
            let newest = promised.iter().max_by_key(|r| r.promised)?;
            return Some(Problem::Lost {
                byte: b,
                promised: **newest,
            });
        }
        let Some(got) = recs.iter().find(|r| r.id == v && r.covers(b)) else {
            return Some(Problem::Foreign { byte: b, value: v });
        };
        let newer = promised.iter().find(|n| {
            n.id != got.id
                && ((n.lane == got.lane && n.issued > got.issued)
                    || got.promised.is_some_and(|p| p < n.issued))
        })?;
        Some(Problem::Stale {
            byte: b,
            got: *got,
            newer: **newer,
        })
    }

    fn check_torn(&self, recs: &[WriteRec], w: u64, value: &Word) -> Option<Problem> {
        for new in recs.iter().filter(|r| r.atomic() && r.covers_word(w)) {
            if !value.contains(&new.id) {
                continue;
            }
            for &v in value.iter().filter(|&&v| v != new.id) {
                if v == 0 {
                    return Some(Problem::Torn {
                        word: w,
                        new: *new,
                        old: None,
                    });
                }
                let Some(old) = recs.iter().find(|r| r.id == v) else {
                    continue;
                };
                let older = (old.lane == new.lane && old.issued < new.issued)
                    || old.promised.is_some_and(|p| p < new.issued);
                if older {
                    return Some(Problem::Torn {
                        word: w,
                        new: *new,
                        old: Some(*old),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: CallKind = CallKind::Persist;
    const F: CallKind = CallKind::Flush;

    fn word(bytes: [u8; 8]) -> Word {
        bytes
    }

    #[test]
    fn unpromised_write_may_or_may_not_be_there() {
        let mut c = Checker::new(true);
        let a = c.issue(0, F, true, 64, 8, 1).unwrap();
        assert_eq!(c.check_word(64, &[0; 8]), None);
        assert_eq!(c.check_word(64, &[a; 8]), None);
    }

    #[test]
    fn promised_write_must_be_there() {
        let mut c = Checker::new(true);
        let a = c.issue(0, P, true, 64, 8, 1).unwrap();
        c.call_succeeded(0, P, Some(a), 5);
        assert!(matches!(
            c.check_word(64, &[0; 8]),
            Some(Problem::Lost { byte: 64, .. })
        ));
        assert_eq!(c.check_word(64, &[a; 8]), None);
        assert!(matches!(
            c.check_word(64, &[9; 8]),
            Some(Problem::Foreign { byte: 64, value: 9 })
        ));
    }

    #[test]
    fn drain_promises_earlier_flushes_of_its_lane_only() {
        let mut c = Checker::new(true);
        let a = c.issue(0, F, true, 0, 8, 1).unwrap();
        let b = c.issue(1, F, true, 8, 8, 2).unwrap();
        c.call_succeeded(0, CallKind::Drain, None, 3);
        assert!(c.check_word(0, &[0; 8]).is_some());
        assert_eq!(c.check_word(8, &[0; 8]), None);
        assert_eq!(c.check_word(8, &[b; 8]), None);
        assert_eq!(c.write(a).unwrap().promised, Some(3));
    }

    #[test]
    fn later_promise_supersedes_and_concurrent_lanes_do_not() {
        let mut c = Checker::new(true);
        let a = c.issue(0, P, true, 0, 8, 1).unwrap();
        let b = c.issue(1, P, true, 0, 8, 2).unwrap();
        c.call_succeeded(0, P, Some(a), 5);
        c.call_succeeded(1, P, Some(b), 6);
        // Concurrent: either may have landed last.
        assert_eq!(c.check_word(0, &[a; 8]), None);
        assert_eq!(c.check_word(0, &[b; 8]), None);
        // Issued after a was promised: a is stale now.
        let d = c.issue(1, P, true, 0, 8, 7).unwrap();
        c.call_succeeded(1, P, Some(d), 9);
        assert!(matches!(
            c.check_word(0, &[a; 8]),
            Some(Problem::Stale { .. })
        ));
        assert_eq!(c.check_word(0, &[d; 8]), None);
    }

    #[test]
    fn program_order_of_a_lane_counts() {
        let mut c = Checker::new(true);
        let a = c.issue(0, F, false, 0, 8, 1).unwrap();
        let b = c.issue(0, F, true, 0, 8, 2).unwrap();
        c.call_succeeded(0, CallKind::Drain, None, 3);
        assert!(matches!(
            c.check_word(0, &[a; 8]),
            Some(Problem::Stale { .. })
        ));
        assert_eq!(c.check_word(0, &[b; 8]), None);
    }

    #[test]
    fn torn_non_relaxed_word_is_caught_relaxed_is_not() {
        let mut c = Checker::new(true);
        let a = c.issue(0, P, false, 0, 16, 1).unwrap();
        assert!(matches!(
            c.check_word(0, &word([a, a, a, a, 0, 0, 0, 0])),
            Some(Problem::Torn {
                word: 0,
                old: None,
                ..
            })
        ));
        assert_eq!(c.check_word(8, &[a; 8]), None);
        let r = c.issue(0, P, true, 16, 16, 2).unwrap();
        assert_eq!(c.check_word(16, &word([r, r, r, r, 0, 0, 0, 0])), None);
    }

    #[test]
    fn torn_check_ignores_partial_words_and_later_writes() {
        let mut c = Checker::new(true);
        // Covers only half of word 0: no atomicity promise there.
        let a = c.issue(0, P, false, 4, 12, 1).unwrap();
        assert_eq!(c.check_word(0, &word([0, 0, 0, 0, a, a, 0, 0])), None);
        // A later write of another lane overwrote part of word 8.
        let b = c.issue(1, F, true, 12, 4, 2).unwrap();
        assert_eq!(c.check_word(8, &word([a, a, a, a, b, b, b, b])), None);
    }

    #[test]
    fn only_deep_persists_promise_without_plain_durability() {
        let mut c = Checker::new(false);
        let a = c.issue(0, P, true, 0, 8, 1).unwrap();
        c.call_succeeded(0, P, Some(a), 2);
        assert_eq!(c.check_word(0, &[0; 8]), None);
        let d = c.issue(0, CallKind::DeepPersist, true, 8, 8, 3).unwrap();
        c.call_succeeded(0, CallKind::DeepPersist, Some(d), 4);
        assert!(c.check_word(8, &[0; 8]).is_some());
        assert_eq!(c.check_word(0, &[0; 8]), None);
    }

    #[test]
    fn ids_run_out_after_255_writes() {
        let mut c = Checker::new(true);
        for i in 0..255u64 {
            c.issue(0, F, true, i * 8, 8, i).unwrap();
        }
        assert_eq!(c.issue(0, F, true, 0, 8, 999), Err(TooManyWrites));
    }
}
