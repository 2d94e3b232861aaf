//! CPU time read from `/proc`, for benchmarks that report what one unit of work costs next to
//! its rate: rates swing with the machine, the CPU a flow needs far less. The machine's figure
//! counts every process on every core (client, gateway, notifier, Postgres, RabbitMQ, Redis),
//! so it says how many such units the cores can carry at most.

use std::time::Duration;

/// `/proc` counts in USER_HZ, which is 100 on Linux.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time used so far: by the whole machine (busy time of all cores) and by every process
/// named `postgres` (backends, WAL writer, checkpointer). Backends live as long as the pool's
/// connections, so a difference over a phase is what Postgres spent on it.
#[derive(Clone, Copy)]
pub struct CpuTime {
    machine: Duration,
    postgres: Duration,
}

/// What a phase cost per unit of work, in microseconds of CPU.
#[derive(Clone, Copy)]
pub struct CpuCost {
    pub machine_micros: f64,
    pub postgres_micros: f64,
    /// Cores busy on average over the phase.
    pub cores_busy: f64,
}

impl CpuTime {
    /// `None` where there is no `/proc`.
    pub fn now() -> Option<CpuTime> {
        Some(CpuTime {
            machine: machine_busy()?,
            postgres: postgres_cpu()?,
        })
    }

    /// The cost per unit of `units` done since `self`, over `elapsed`.
    pub fn cost_since(self, units: usize, elapsed: Duration) -> Option<CpuCost> {
        let now = CpuTime::now()?;
        let per_unit = |spent: Duration| spent.as_secs_f64() * 1e6 / units as f64;
        Some(CpuCost {
            machine_micros: per_unit(now.machine - self.machine),
            postgres_micros: per_unit(now.postgres - self.postgres),
            cores_busy: (now.machine - self.machine).as_secs_f64() / elapsed.as_secs_f64(),
        })
    }
}

impl std::fmt::Display for CpuCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine CPU {:.0} µs each ({:.2} cores busy), PostgreSQL {:.0} µs",
            self.machine_micros, self.cores_busy, self.postgres_micros
        )
    }
}

/// Busy time of all cores: the first line of `/proc/stat` less idle and I/O wait.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(Duration::from_millis(busy * 1000 / TICKS_PER_SECOND))
}

fn postgres_cpu() -> Option<Duration> {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ...": utime and stime are the 12th and 13th fields after comm.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if head.ends_with("(postgres") {
            let fields: Vec<&str> = rest.split(' ').collect();
            ticks += fields.get(11).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0)
                + fields.get(12).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}
