//! System `ractor_floor`: the cost floor of one actor per job without any
//! scheduler logic. One ractor actor per job; one task with a heap of
//! deadlines (as `floor`) casts each due job's actor a `Fire`; the actor
//! spawns a tokio task per fire that calls the probe and casts `Done` back
//! to it. Two actor messages and one task per fire.

use super::System;
use crate::probe::{now_unix_us, probe};
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub enum Msg {
    Fire,
    Done,
}

struct JobActor;

impl Actor for JobActor {
    type Msg = Msg;
    type State = (u32, u64);
    type Arguments = u32;

    async fn pre_start(
        &self,
        _myself: ActorRef<Msg>,
        job: u32,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((job, 0))
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Fire => {
                let job = state.0;
                tokio::spawn(async move {
                    probe().fire(job as usize);
                    let _ = myself.cast(Msg::Done);
                });
            }
            Msg::Done => state.1 += 1,
        }
        Ok(())
    }
}

struct Core {
    schedules: Vec<cron::Schedule>,
    actors: Vec<ActorRef<Msg>>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

pub struct RactorFloor {
    core: Option<Core>,
    stop_tx: Option<watch::Sender<bool>>,
    handle: Option<JoinHandle<Core>>,
}

impl Core {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Core {
        let mut fired: Vec<(i64, u32)> = Vec::new();
        loop {
            let Some(&Reverse((due, _))) = self.heap.peek() else {
                let _ = stop.changed().await;
                return self;
            };
            let now_us = now_unix_us();
            let wait_us = due * 1_000_000 - now_us;
            if wait_us > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_micros(wait_us as u64)) => continue,
                    _ = stop.changed() => return self,
                }
            }
            let now_s = now_us.div_euclid(1_000_000);
            while let Some(&Reverse((due, id))) = self.heap.peek() {
                if due > now_s {
                    break;
                }
                self.heap.pop();
                let _ = self.actors[id as usize].cast(Msg::Fire);
                fired.push((due, id));
            }
            for (due, id) in fired.drain(..) {
                let base = DateTime::from_timestamp(due.max(now_s), 0).expect("timestamp");
                if let Some(next) = self.schedules[id as usize].after(&base).next() {
                    self.heap.push(Reverse((next.timestamp(), id)));
                }
            }
        }
    }
}

impl System for RactorFloor {
    const NAME: &'static str = "ractor_floor";

    async fn new(_jobs: usize) -> Result<Self, String> {
        Ok(RactorFloor {
            core: Some(Core {
                schedules: Vec::new(),
                actors: Vec::new(),
                heap: BinaryHeap::new(),
            }),
            stop_tx: None,
            handle: None,
        })
    }

    async fn add(&mut self, expr: &str, job: u32) -> Result<(), String> {
        let core = self.core.as_mut().ok_or("add after start")?;
        let schedule =
            cron::Schedule::from_str(expr).map_err(|e| format!("cron parse {expr}: {e}"))?;
        let (actor, _) = Actor::spawn(None, JobActor, job)
            .await
            .map_err(|e| format!("spawn: {e}"))?;
        let id = core.actors.len() as u32;
        if let Some(next) = schedule.after(&Utc::now()).next() {
            core.heap.push(Reverse((next.timestamp(), id)));
        }
        core.schedules.push(schedule);
        core.actors.push(actor);
        Ok(())
    }

    async fn start(&mut self) -> Result<(), String> {
        let core = self.core.take().ok_or("started twice")?;
        let (tx, rx) = watch::channel(false);
        self.stop_tx = Some(tx);
        self.handle = Some(tokio::spawn(core.run(rx)));
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), String> {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(true);
        }
        if let Some(h) = self.handle.take() {
            let core = h.await.map_err(|e| format!("ractor_floor task: {e}"))?;
            for a in &core.actors {
                a.stop(None);
            }
        }
        Ok(())
    }
}
