//! The post-crash images `sim::app` hands to `recover` are exactly those
//! the platform model can produce: every aligned 8-byte word old or new,
//! whole (the platform's 8-byte store atomicity), independently of the
//! others, also for RELAXED data that was never drained; and an
//! acknowledged word is never old where plain persists are durable, while
//! on `devdax-wpq` (where they are not) it can be.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::error::Error;

use sim::app::{Call, Replica, SimLane, Simulation, FLUSH_RELAXED, PERSIST_RELAXED};
use sim::platform::Config;

type Res = Result<(), Box<dyn Error>>;

fn word(image: &[u8], at: u64) -> [u8; 8] {
    let at = usize::try_from(at).unwrap();
    image[at..at + 8].try_into().unwrap()
}

fn rdma_allowed() -> Vec<Config> {
    Config::all()
        .into_iter()
        .filter(|c| c.allowed() && !c.is_tcp())
        .collect()
}

const D: u64 = 4096;
/// An unaligned RELAXED range: bytes 3..13 of the first line, and two
/// whole words in the next line.
const ODD: (u64, u64) = (D + 3, 10);
const PAIR: (u64, u64) = (D + 64, 16);

/// The words' new values (old: zeros).
fn new_words() -> [[u8; 8]; 4] {
    let mut w0 = [0u8; 8];
    w0[3..].fill(0xa1);
    let mut w1 = [0u8; 8];
    w1[..5].fill(0xa1);
    [w0, w1, [0xb2; 8], [0xc3; 8]]
}

/// RELAXED data that is flushed and never drained (lane 0), then a plain
/// persist of an unrelated word (the workload ends; what is in flight runs
/// to its end).
fn relaxed_workload(r: &mut SimLane<'_>) -> Res {
    r.write(ODD.0, &[0xa1; 10])?;
    r.write(PAIR.0, &[0xb2; 8])?;
    r.write(PAIR.0 + 8, &[0xc3; 8])?;
    r.flush(ODD.0, ODD.1, FLUSH_RELAXED)?;
    r.persist(PAIR.0, PAIR.1, PERSIST_RELAXED)?;
    Ok(())
}

#[test]
fn relaxed_words_are_old_or_new_whole_and_every_mix_is_produced() {
    let seen: RefCell<BTreeSet<[bool; 4]>> = RefCell::new(BTreeSet::new());
    let torn: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let new = new_words();
    let at = [D, D + 8, PAIR.0, PAIR.0 + 8];
    let recover = |image: &[u8], _: &[Call]| -> Result<(), String> {
        let mut state = [false; 4];
        for (i, (&a, n)) in at.iter().zip(&new).enumerate() {
            let w = word(image, a);
            if w == *n {
                state[i] = true;
            } else if w != [0; 8] {
                torn.borrow_mut().push(format!("word {a}: {w:02x?}"));
            }
        }
        seen.borrow_mut().insert(state);
        Ok(())
    };
    let report = Simulation::new(relaxed_workload, recover)
        .configs(rdma_allowed())
        .seeds(1..41)
        .run();
    assert!(report.passed(), "{report}");
    // Never produced: a word that is neither its old nor its new value
    // (torn inside the word).
    assert!(torn.borrow().is_empty(), "{:?}", torn.borrow());
    // Produced: every combination of old and new over the two words of the
    // unaligned range and over the two words of the pair (words are
    // independent), including new-then-old in address order.
    let seen = seen.borrow();
    for a in [false, true] {
        for b in [false, true] {
            assert!(
                seen.iter().any(|s| s[0] == a && s[1] == b),
                "unaligned range: ({a}, {b}) never produced: {seen:?}"
            );
            assert!(
                seen.iter().any(|s| s[2] == a && s[3] == b),
                "pair: ({a}, {b}) never produced: {seen:?}"
            );
        }
    }
}

/// An 8-byte-atomic persist that returned: on platforms where plain
/// persists are durable its word is never old afterwards; on devdax-wpq
/// (only deep persists are durable) it can be old after the persist
/// returned, and the simulator produces that image.
#[test]
fn an_acknowledged_word_is_old_exactly_where_the_platform_allows() {
    for config in rdma_allowed() {
        let old_after_ack = RefCell::new(0u64);
        let workload = |r: &mut SimLane<'_>| -> Res {
            for g in 1..=3u8 {
                r.write(D + 128, &[g; 8])?;
                r.persist(D + 128, 8, 0)?;
            }
            Ok(())
        };
        let recover = |image: &[u8], history: &[Call]| -> Result<(), String> {
            let acked = history
                .iter()
                .filter(|c| matches!(c, Call::Persist { .. }))
                .count();
            let w = word(image, D + 128);
            let g = usize::from(w[0]);
            if w != [w[0]; 8] || g > 3 {
                return Err(format!("torn or unknown word {w:02x?}"));
            }
            if g < acked {
                *old_after_ack.borrow_mut() += 1;
            }
            Ok(())
        };
        let report = Simulation::new(workload, recover)
            .configs(vec![config])
            .seeds(1..31)
            .run();
        assert!(report.passed(), "{config:?}: {report}");
        let old = *old_after_ack.borrow();
        if config.platform.plain_persist_durable() {
            assert_eq!(old, 0, "{config:?}: an acknowledged word was old");
        } else {
            assert!(old > 0, "{config:?}: the platform loses plain persists");
        }
    }
}
