//! Execute with: cargo run --example service -- [--addr 127.0.0.1:7878] [--for-secs N]
//!
//! A small tokio service that embeds the scheduler beside its own work: it
//! accepts orders on a TCP port (one line each) into an in-memory queue, and a
//! scheduled job flushes the queue every five seconds. The same port takes
//! operator commands that drive the scheduler's handle:
//!
//! ```text
//! $ nc 127.0.0.1 7878
//! order 3 apples        -> queued (2 waiting)
//! status                -> one line per job
//! pause flush waiting for the warehouse
//! resume flush
//! trigger flush
//! ```
//!
//! It stops on Ctrl-C (or after `--for-secs`), shutting the scheduler down
//! with a grace period so that a flush in progress can finish.

use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Orders = Arc<Mutex<Vec<String>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let addr = flag("--addr").unwrap_or_else(|| "127.0.0.1:7878".into());
    let run_for = flag("--for-secs").and_then(|s| s.parse::<u64>().ok());

    // ========================== The service's own state ==========================
    let orders: Orders = Arc::default();

    // ========================== The embedded scheduler ==========================
    let queue = orders.clone();
    let scheduler = Scheduler::builder()
        .handler("flush-orders", move |ctx: JobContext| {
            let queue = queue.clone();
            async move {
                let batch: Vec<String> = std::mem::take(&mut *queue.lock().expect("orders lock"));
                println!(
                    "[{}] flushed {} order(s) (run {})",
                    ctx.scheduled.format("%H:%M:%S"),
                    batch.len(),
                    ctx.run_id
                );
                Ok::<(), std::io::Error>(())
            }
        })
        .in_memory()
        .start()
        .await?;
    scheduler
        .upsert(
            JobSpec::builder("flush", ScheduleSpec::cron("*/5 * * * * *"), "flush-orders")
                .build()?,
        )
        .await?;

    // ========================== Serve ==========================
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let stop = async {
        match run_for {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                tokio::spawn(serve(socket, orders.clone(), scheduler.clone()));
            }
            () = &mut stop => break,
        }
    }

    // ========================== Shut down ==========================
    // No new fire from now on; the runs in flight get 10 s to finish, then
    // the rest is cancelled (5 s grace) and runs again at the next start.
    let report = scheduler
        .shutdown_after_drain(Duration::from_secs(10), Duration::from_secs(5))
        .await?;
    println!("stopped; {} run(s) cancelled", report.cancelled.len());
    Ok(())
}

async fn serve(socket: TcpStream, orders: Orders, scheduler: Scheduler) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next()) {
            (Some("order"), Some(_)) => {
                let mut queue = orders.lock().expect("orders lock");
                queue.push(line.clone());
                format!("queued ({} waiting)", queue.len())
            }
            (Some("status"), _) => match scheduler.list().await {
                Ok(all) => all
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {:?} runs={} next={:?}",
                            s.id, s.phase, s.counters.runs, s.next_fire
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(e) => format!("error: {e}"),
            },
            (Some("pause"), Some(id)) => {
                let note: Vec<&str> = words.collect();
                let note = (!note.is_empty()).then(|| note.join(" "));
                reply(scheduler.pause(id, note.as_deref()).await)
            }
            (Some("resume"), Some(id)) => reply(scheduler.resume(id, None).await),
            (Some("trigger"), Some(id)) => reply(scheduler.trigger(id).await.map(|_| ())),
            _ => "commands: order TEXT | status | pause ID [NOTE] | resume ID | trigger ID".into(),
        };
        if write
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn reply(result: Result<(), cronactor::Error>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}
