//! A card's steps journalled ahead of the card, a group at a time.
//!
//! Before a group of steps runs, every step of it is journalled `started`, in the same transaction as the outcomes
//! of the group before it; when the card's last group has run, its outcomes are written. A step that fails ends
//! its group: the outcomes so far are written, and the group's steps after it, which never ran, are removed.
//! So a card makes one commit a group (and one more at the end) instead of two a step, and the journal still
//! says, after any crash, which steps may have reached the card: a row left `started` is such a step, as it was
//! when each step was written ahead alone; a group widens that to the steps of one group. Nothing reads these
//! rows back to resume a card — the chip decides ([`crate::run`]) — they are the record of what ran on it.
//!
//! The issuer makes a group of the steps of one DF ([`crate::plan::Step::starts_group`]): a generation 3 card's
//! 105 steps are 13 groups.

use super::{now, Backend, StepLog, StepOutcome};
use crate::Error;

/// The steps of one attempt of one card, journalled ahead in groups.
pub struct Ahead<'j> {
    journal: &'j (dyn Backend + Send),
    card: i64,
    attempt: i64,
    /// The index the next step gets.
    next: usize,
    /// Outcomes not yet written.
    ran: Vec<StepOutcome>,
}

impl<'j> Ahead<'j> {
    /// The steps of `attempt` of `card`, numbered from 0.
    pub fn new(journal: &'j (dyn Backend + Send), card: i64, attempt: i64) -> Ahead<'j> {
        Ahead { journal, card, attempt, next: 0, ran: Vec::new() }
    }

    /// Runs the steps named `labels` as one group: `run(i)` runs its `i`-th step. The group is journalled
    /// `started` before its first step runs; at its first failing step the outcomes so far are written, the
    /// rest of the group removed, and the step's error returned (or the journal's, if writing failed).
    pub fn group(&mut self, labels: &[String], run: &mut dyn FnMut(usize) -> Result<(), Error>) -> Result<(), Error> {
        let first = self.next;
        let next: Vec<(usize, &str)> = labels.iter().enumerate().map(|(i, l)| (first + i, l.as_str())).collect();
        let ran = std::mem::take(&mut self.ran);
        self.journal.log_steps(self.card, self.attempt, &StepLog { ran: &ran, not_run: &[], next: &next })?;
        self.next += labels.len();
        for i in 0..labels.len() {
            let started = now();
            let result = run(i);
            let error = result.as_ref().err().map(ToString::to_string);
            self.ran.push(StepOutcome { idx: first + i, started: Some(started), finished: now(), error });
            if let Err(e) = result {
                let not_run: Vec<usize> = (first + i + 1..first + labels.len()).collect();
                let ran = std::mem::take(&mut self.ran);
                self.journal.log_steps(
                    self.card,
                    self.attempt,
                    &StepLog { ran: &ran, not_run: &not_run, next: &[] },
                )?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// [`Ahead::group`] of one step.
    pub fn one(&mut self, label: &str, run: &mut dyn FnMut() -> Result<(), Error>) -> Result<(), Error> {
        self.group(&[label.to_owned()], &mut |_| run())
    }

    /// Writes the outcomes not yet written (after the last group).
    pub fn finish(&mut self) -> Result<(), Error> {
        let ran = std::mem::take(&mut self.ran);
        self.journal.log_steps(self.card, self.attempt, &StepLog { ran: &ran, ..StepLog::default() })
    }
}
