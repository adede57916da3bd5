//! The open-file limit the connection cap must fit in. The usual soft limit is 1024 (systemd,
//! Docker's default), the cap's own default: at the cap, `accept` would fail for want of a
//! descriptor first, and so would the pool's reconnects, DHMAD's and the relay's sockets and
//! the static files, all of which the cap exists to keep working.

use crate::config::EdgeLimits;

/// Descriptors kept beside the client connections, beyond the database pool's: DHMAD's and
/// the relay's sockets, static files, the runtime's own.
const RESERVE: u64 = 64;
/// The cap is never lowered below this (a limit this low is a misconfigured host).
const FLOOR: usize = 16;

/// Raises the process's soft open-file limit to its hard limit, and lowers `limits`'s
/// connection cap (with a warning naming `MAX_CONNECTIONS`) if even that leaves no room for it
/// beside `pool` database connections and [`RESERVE`]. Where the limit cannot be read, nothing
/// changes.
pub fn fit(limits: &mut EdgeLimits, pool: u32) {
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "the open-file limit could not be read or raised");
            return;
        }
    };
    let room = open_files.saturating_sub(RESERVE + u64::from(pool));
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(FLOOR);
    if limits.max_connections > room {
        tracing::warn!(
            open_files,
            max_connections = limits.max_connections,
            lowered_to = room,
            "MAX_CONNECTIONS does not fit in the open-file limit (ulimit -n) beside the database \
             pool: lowered; raise the limit (LimitNOFILE=, docker run --ulimit nofile=)"
        );
        limits.max_connections = room;
        limits.max_connections_per_client = limits.max_connections_per_client.min(room);
    }
}
