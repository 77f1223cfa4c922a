//! Wall-clock steps: the watch that compares the wall clock with tokio's,
//! and what a step does (live jobs re-plan, passive jobs' wake-up timers
//! are armed again).

use super::{SupervisorMsg, SupervisorState};
use crate::event::EventKind;
use crate::job::JobMsg;
use crate::passive::{Slot, Transit};
use crate::runtime::Runtime;
use ractor::ActorRef;
use std::sync::Arc;

impl SupervisorState {
    /// The wall clock stepped: live jobs re-plan; passive jobs' wake-up
    /// timers are armed again against the new clock, and each passive job
    /// announces its re-plan as a live one does (a completed one too).
    pub(super) fn clock_stepped(&mut self) {
        let lead = chrono::Duration::from_std(crate::passive::effective_lead(&self.rt.config))
            .unwrap_or(chrono::Duration::zero());
        for slot in self.jobs.values_mut() {
            match slot {
                Slot::Live { actor, .. } => {
                    let _ = actor.cast(JobMsg::Replan);
                }
                Slot::Transit(t) => match &mut **t {
                    Transit::Passivating { waiting, .. } | Transit::Waking { waiting } => {
                        waiting.push(JobMsg::Replan)
                    }
                },
                Slot::Passive {
                    target,
                    next_fire: Some(next),
                } => {
                    self.wake_generation += 1;
                    if target.rearm_passive(self.wake_generation) {
                        // What a live job's re-plan announces: the same slot.
                        if self.rt.events.has_subscribers() {
                            self.rt.events.publish(
                                target.id(),
                                self.rt.clock.now(),
                                EventKind::Replanned {
                                    next_fire: Some(*next),
                                },
                            );
                        }
                        let deadline =
                            crate::clock::deadline_for(self.rt.clock.now(), *next - lead);
                        self.rt.timer.arm(
                            deadline,
                            target.clone(),
                            crate::timer::TimerKind::Schedule,
                            self.wake_generation,
                        );
                    }
                }
                Slot::Passive {
                    target,
                    next_fire: None,
                } => {
                    // A completed job has no timer; a live one still
                    // announces its re-plan.
                    if self.rt.events.has_subscribers() {
                        self.rt.events.publish(
                            target.id(),
                            self.rt.clock.now(),
                            EventKind::Replanned { next_fire: None },
                        );
                    }
                }
            }
        }
    }
}

/// Compares the wall clock with tokio's clock every `clock_check_interval`;
/// a difference that changes by more than `clock_jump_threshold` is a step
/// (NTP correction, VM resume), and every job re-plans.
pub(super) fn spawn_clock_watch(rt: &Arc<Runtime>, supervisor: ActorRef<SupervisorMsg>) {
    let clock = rt.clock.clone();
    let every = rt.config.clock_check_interval;
    let threshold =
        chrono::Duration::from_std(rt.config.clock_jump_threshold).unwrap_or(chrono::Duration::MAX);
    tokio::spawn(async move {
        let mono0 = tokio::time::Instant::now();
        let wall0 = clock.now();
        let skew = |clock: &dyn crate::clock::Clock| {
            let mono = chrono::Duration::from_std(mono0.elapsed()).unwrap_or(chrono::Duration::MAX);
            (clock.now() - wall0) - mono
        };
        let mut last = skew(&*clock);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = skew(&*clock);
            if (now - last).abs() > threshold
                && supervisor.cast(SupervisorMsg::ClockStepped).is_err()
            {
                return;
            }
            last = now;
            if supervisor.get_status() == ractor::ActorStatus::Stopped {
                return;
            }
        }
    });
}
