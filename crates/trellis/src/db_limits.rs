//! `trellis serve`'s flags for how long a node waits for its PostgreSQL store
//! (`--db-statement-timeout`, `--db-lock-timeout`, `--db-idle-in-transaction-timeout`,
//! `--db-keepalive`, `--db-acquire-timeout`), checked before anything is bound and turned into
//! the store's [`PgLimits`]. README, "A database that misbehaves", says why each exists.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use trellis_store::PgLimits;

/// The PostgreSQL session limits and the pool's acquire timeout. SQLite ignores them.
#[derive(Args, Debug)]
pub struct DbLimitArgs {
    /// PostgreSQL `statement_timeout`, in seconds: the longest one statement may run (0: no
    /// limit).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    db_statement_timeout: u64,
    /// PostgreSQL `lock_timeout`, in seconds: the longest a write waits for the writer lock that
    /// another node holds, and for this node's earlier writers (0: no limit). A write that waits
    /// longer is answered 503 ServiceUnavailableException.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    db_lock_timeout: u64,
    /// PostgreSQL `idle_in_transaction_session_timeout`, in seconds: a node that stops in the
    /// middle of a transaction (SIGSTOP, a paused VM, a cut network) loses its session, and its
    /// locks, after this long (0: no limit).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    db_idle_in_transaction_timeout: u64,
    /// Seconds of silence after which PostgreSQL probes this node's connections with TCP
    /// keepalives (`tcp_keepalives_idle`; probes every half of it, three of them), so that a
    /// vanished node's sessions end (0: the server's setting).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    db_keepalive: u64,
    /// Seconds a request waits for a database connection before it is answered 503
    /// ServiceUnavailableException, 1–60.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    db_acquire_timeout: u64,
}

/// The longest `--db-*` timeout: a day.
const MAX_DB_TIMEOUT_SECS: u64 = 86_400;
const ACQUIRE_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=60;

impl DbLimitArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, value) in [
            ("--db-statement-timeout", self.db_statement_timeout),
            ("--db-lock-timeout", self.db_lock_timeout),
            (
                "--db-idle-in-transaction-timeout",
                self.db_idle_in_transaction_timeout,
            ),
            ("--db-keepalive", self.db_keepalive),
        ] {
            if value > MAX_DB_TIMEOUT_SECS {
                bail!("{flag} {value} must be between 0 and {MAX_DB_TIMEOUT_SECS} seconds");
            }
        }
        if !ACQUIRE_TIMEOUT_SECS.contains(&self.db_acquire_timeout) {
            bail!(
                "--db-acquire-timeout {} must be between {} and {} seconds",
                self.db_acquire_timeout,
                ACQUIRE_TIMEOUT_SECS.start(),
                ACQUIRE_TIMEOUT_SECS.end()
            );
        }
        Ok(())
    }

    pub fn limits(&self) -> PgLimits {
        let limit = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        PgLimits {
            statement_timeout: limit(self.db_statement_timeout),
            lock_timeout: limit(self.db_lock_timeout),
            idle_in_transaction_timeout: limit(self.db_idle_in_transaction_timeout),
            keepalive: limit(self.db_keepalive),
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        db: DbLimitArgs,
    }

    fn parse(args: &[&str]) -> DbLimitArgs {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .db
    }

    #[test]
    fn defaults_match_the_store_defaults() {
        let args = parse(&[]);
        args.check().unwrap();
        assert_eq!(args.limits(), PgLimits::default());
    }

    #[test]
    fn zero_lifts_a_session_limit_but_not_the_acquire_timeout() {
        let args = parse(&["--db-lock-timeout", "0", "--db-keepalive", "0"]);
        args.check().unwrap();
        assert_eq!(args.limits().lock_timeout, None);
        assert_eq!(args.limits().keepalive, None);
        assert!(parse(&["--db-acquire-timeout", "0"]).check().is_err());
        assert!(parse(&["--db-statement-timeout", "86401"]).check().is_err());
    }
}
