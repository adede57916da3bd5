//! CPU time read from `/proc`: of a process, of the children a process waited for, and of
//! every process of the local PostgreSQL server; and of all of them around one round.

/// User and system CPU time of a process (all its threads), in clock ticks (1/100 s).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
}

/// What `/proc/PID/stat` says of a process: its command name, its own CPU time, and that of
/// its children it has waited for (ended ones).
struct Stat {
    comm: String,
    own: CpuTicks,
    reaped: CpuTicks,
}

impl Stat {
    fn of(pid: &str) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold spaces; fields follow it.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime, stime, cutime, cstime are fields 14-17 of the line; `rest` starts at field 3.
        Some(Self {
            comm,
            own: CpuTicks {
                user: num(11),
                system: num(12),
            },
            reaped: CpuTicks {
                user: num(13),
                system: num(14),
            },
        })
    }
}

impl CpuTicks {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        Stat::of(&pid.to_string())
            .map(|s| s.own)
            .ok_or_else(|| anyhow::anyhow!("cannot read /proc/{pid}/stat"))
    }

    /// The ended children this process waited for (pgbench, on the anchors' side).
    pub fn of_reaped_children() -> Self {
        Stat::of("self").map(|s| s.reaped).unwrap_or_default()
    }

    /// Every process of the local PostgreSQL server, with the backends that ended (their
    /// postmaster waited for them, so their time is in its children's); zero when the server
    /// is on another host.
    pub fn of_postgres() -> Self {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Self::default();
        };
        dir.flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let pid = name.to_str()?;
                pid.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
                Stat::of(pid).filter(|s| s.comm == "postgres")
            })
            .fold(Self::default(), |sum, s| sum.plus(s.own).plus(s.reaped))
    }

    fn plus(self, other: Self) -> Self {
        Self {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }

    /// This process's (zero if `/proc` cannot tell).
    pub fn of_self() -> Self {
        Self::of(std::process::id()).unwrap_or_default()
    }

    /// User + system time per request over `n` requests, µs (ticks are 10 ms).
    pub fn per_request_us(self, n: usize) -> f64 {
        (self.user + self.system) as f64 * 10_000.0 / n.max(1) as f64
    }

    pub fn since(self, before: Self) -> Self {
        Self {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
}

/// The CPU of every party to a round, read before and after it: the storefront, the database
/// server, and the bench's ended children (pgbench). The load generator's own is in its `Run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parties {
    pub storefront: CpuTicks,
    pub postgres: CpuTicks,
    pub children: CpuTicks,
}

impl Parties {
    pub fn now(storefront: u32) -> Self {
        Self {
            storefront: CpuTicks::of(storefront).unwrap_or_default(),
            postgres: CpuTicks::of_postgres(),
            children: CpuTicks::of_reaped_children(),
        }
    }

    pub fn since(self, before: Self) -> Self {
        Self {
            storefront: self.storefront.since(before.storefront),
            postgres: self.postgres.since(before.postgres),
            children: self.children.since(before.children),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CpuTicks;

    /// pgbench's CPU is read as the time of the children the bench waited for: a child that
    /// burns CPU and is waited for must show there.
    #[test]
    fn a_waited_for_child_s_cpu_counts_as_reaped() {
        let before = CpuTicks::of_reaped_children();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let reaped = CpuTicks::of_reaped_children().since(before);
        // At least 50 ms: the loop takes several times that.
        assert!(
            reaped.user + reaped.system >= 5,
            "the child's CPU: {reaped:?}"
        );
    }
}
