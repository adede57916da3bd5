//! CPU per request of every party to one side of a round, and the Profile line that says
//! what a target leaves the storefront.

use std::time::Duration;

use crate::{
    cpu::{CpuTicks, Parties},
    load,
    report::{list, median, thousands},
};

/// CPU per request of every party to one side of a round, µs (user + system time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub storefront: f64,
    /// The bench's load generator (ours) or pgbench (the anchor's).
    pub client: f64,
    /// The database server: every process of it, the backends that ended included (pgbench's
    /// connections start and end within its run).
    pub postgres: f64,
    /// The part of `postgres` spent in the kernel (sending, receiving, waking its peer).
    pub postgres_kernel: f64,
    /// What the machine's cores left unused: cores × wall time, less all of the above.
    pub idle: f64,
}

impl Cpu {
    /// Ours: the load's own run, with the storefront and the database around it.
    pub fn of_run(run: &load::Run) -> Self {
        Self::of(run.parties, run.cpu, run.ok, run.elapsed)
    }

    /// The anchor's: pgbench is the bench's child that ended within the run.
    pub fn of_anchor(parties: Parties, n: usize, wall: Duration) -> Self {
        Self::of(parties, parties.children, n, wall)
    }

    fn of(parties: Parties, client: CpuTicks, n: usize, wall: Duration) -> Self {
        let us = |t: CpuTicks| t.per_request_us(n);
        let (storefront, client, postgres) =
            (us(parties.storefront), us(client), us(parties.postgres));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let wall = wall.as_secs_f64() * 1e6 / n.max(1) as f64;
        Self {
            storefront,
            client,
            postgres,
            postgres_kernel: us(CpuTicks {
                user: 0,
                ..parties.postgres
            }),
            idle: (cores * wall - storefront - client - postgres).max(0.0),
        }
    }

    fn median_of(all: &[Self]) -> Self {
        let m = |f: fn(&Self) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
        Self {
            storefront: m(|c| c.storefront),
            client: m(|c| c.client),
            postgres: m(|c| c.postgres),
            postgres_kernel: m(|c| c.postgres_kernel),
            idle: m(|c| c.idle),
        }
    }
}

/// Where each side's CPU went per `request`; and what the target leaves the storefront and
/// its client: at `target` × the anchor's rate, a request may take the cores' time of one
/// anchor request / `target`, of which the database takes what it took on our side, and no
/// core may idle. None when our side has no round.
pub fn line(
    request: &str,
    c: usize,
    target: Option<f64>,
    ours_all: &[Cpu],
    anchor_all: &[Cpu],
) -> Option<String> {
    if ours_all.is_empty() {
        return None;
    }
    let storefront: Vec<f64> = ours_all.iter().map(|x| x.storefront).collect();
    let ours = Cpu::median_of(ours_all);
    let mut line = format!(
        "- CPU per {request} at c = {c}, µs (medians): ours: storefront {} (per repetition: {}), load generator {}, Postgres {} ({} of it in the kernel), idle {}",
        thousands(ours.storefront),
        list(&storefront, thousands),
        thousands(ours.client),
        thousands(ours.postgres),
        thousands(ours.postgres_kernel),
        thousands(ours.idle),
    );
    if !anchor_all.is_empty() {
        let anchor = Cpu::median_of(anchor_all);
        line += &format!(
            "; anchor: pgbench {}, Postgres {} ({} in the kernel), idle {}",
            thousands(anchor.client),
            thousands(anchor.postgres),
            thousands(anchor.postgres_kernel),
            thousands(anchor.idle),
        );
        if let (Some(t), true) = (target, anchor.postgres > 0.0) {
            let whole = (anchor.storefront + anchor.client + anchor.postgres + anchor.idle) / t;
            line += &format!(
                "; at {t} × the anchor's rate a request may take {} µs of the cores, which leaves the storefront and its load generator {} µs beside Postgres's {}, with no core idle (they take {})",
                thousands(whole),
                thousands(whole - ours.postgres),
                thousands(ours.postgres),
                thousands(ours.storefront + ours.client),
            );
        }
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::{line, Cpu};

    fn cpu(storefront: f64, client: f64, postgres: f64, idle: f64) -> Cpu {
        Cpu {
            storefront,
            client,
            postgres,
            postgres_kernel: 0.0,
            idle,
        }
    }

    /// At half the anchor's rate a request may take twice the anchor's 100 µs of the cores;
    /// our Postgres takes 60 of those 200, which leaves 140.
    #[test]
    fn the_budget_is_the_anchor_s_cores_over_the_target_less_our_database() {
        let ours = [cpu(90.0, 20.0, 60.0, 10.0)];
        let anchor = [cpu(0.0, 10.0, 80.0, 10.0)];
        let text = line("read", 8, Some(0.5), &ours, &anchor).expect("a line");
        assert!(text.contains("may take 200 µs of the cores"), "{text}");
        assert!(
            text.contains("leaves the storefront and its load generator 140 µs"),
            "{text}"
        );
        assert!(text.contains("(they take 110)"), "{text}");
    }

    /// No target, or no database on this host (its CPU reads zero): no budget is claimed.
    #[test]
    fn no_budget_without_a_target_or_the_database_s_cpu() {
        let ours = [cpu(90.0, 20.0, 0.0, 10.0)];
        let anchor = [cpu(0.0, 10.0, 0.0, 10.0)];
        let remote = line("read", 8, Some(0.5), &ours, &anchor).expect("a line");
        assert!(!remote.contains("may take"), "{remote}");
        let untargeted = line("read", 8, None, &ours, &[cpu(0.0, 10.0, 80.0, 10.0)]);
        assert!(!untargeted.expect("a line").contains("may take"));
        assert!(line("read", 8, Some(0.5), &[], &anchor).is_none());
    }
}
