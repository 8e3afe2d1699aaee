//! The change feed's background tasks: a revision poll (both engines) and, on PostgreSQL, a
//! `LISTEN trellis_revision` loop. Both only ever move the feed forward.

use std::convert::Infallible;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::backend::Pool;
use crate::{NOTIFY_CHANNEL, Revision, StoreOptions};

/// Pause before re-establishing a failed LISTEN connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Advances the feed to `revision` unless it already shows that or later: local commits, the
/// poll and notifications race, and a late report of an old revision must not move it back.
pub(crate) fn publish(feed: &watch::Sender<Revision>, revision: Revision) {
    feed.send_if_modified(|current| {
        if revision > *current {
            *current = revision;
            true
        } else {
            false
        }
    });
}

/// Starts the tasks `options` asks for. They hold no reference to the `Store`, only to the pool,
/// the feed and a shutdown receiver, so they stop when the last `Store` clone is dropped.
pub(crate) fn spawn(
    pool: &Pool,
    options: &StoreOptions,
    feed: &watch::Sender<Revision>,
    shutdown: &watch::Sender<bool>,
) {
    if let Some(every) = options.poll_interval {
        tokio::spawn(poll(
            pool.clone(),
            every,
            feed.clone(),
            shutdown.subscribe(),
        ));
    }
    if options.listen
        && let Pool::Postgres(pg, _) = pool
    {
        tokio::spawn(listen(pg.clone(), feed.clone(), shutdown.subscribe()));
    }
}

/// Re-reads `meta.revision` every `every`. This is how commits from other processes on the same
/// SQLite file are seen at all, and on PostgreSQL it covers notifications lost while LISTEN was
/// down. Failures are logged once per outage, not once per tick.
async fn poll(
    pool: Pool,
    every: Duration,
    feed: watch::Sender<Revision>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let result = tokio::select! {
            _ = shutdown.changed() => return,
            result = async {
                ticker.tick().await;
                pool.revision().await
            } => result,
        };
        match result {
            Ok(revision) => {
                if failing {
                    tracing::info!("store revision poll recovered");
                    failing = false;
                }
                publish(&feed, revision);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "store revision poll failed; will keep trying");
                    failing = true;
                }
            }
        }
    }
}

/// Follows `NOTIFY trellis_revision` from every node. The listener gets a pool of its own (one
/// connection, no lifetime limits) so it never takes a connection from the request path and is
/// not recycled by the main pool's reaper.
async fn listen(pool: PgPool, feed: watch::Sender<Revision>, mut shutdown: watch::Receiver<bool>) {
    let listen_pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*pool.connect_options()).clone());
    loop {
        let result = tokio::select! {
            _ = shutdown.changed() => break,
            result = listen_session(&listen_pool, &pool, &feed) => result,
        };
        let Err(e) = result;
        tracing::warn!(error = %e, "store LISTEN failed; reconnecting (the revision poll covers the gap)");
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(LISTEN_RETRY) => {}
        }
    }
    listen_pool.close().await;
}

/// One LISTEN connection's life; returns only with the error that ended it.
async fn listen_session(
    listen_pool: &PgPool,
    pool: &PgPool,
    feed: &watch::Sender<Revision>,
) -> Result<Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(listen_pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    // Commits made before the LISTEN took effect were announced to nobody: catch up once.
    catch_up(pool, feed).await?;
    loop {
        match listener.try_recv().await? {
            Some(notification) => match notification.payload().parse::<Revision>() {
                Ok(revision) => publish(feed, revision),
                Err(_) => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring malformed {NOTIFY_CHANNEL} notification"
                ),
            },
            // The connection dropped and was re-established; anything sent meanwhile is lost.
            None => catch_up(pool, feed).await?,
        }
    }
}

async fn catch_up(pool: &PgPool, feed: &watch::Sender<Revision>) -> Result<(), sqlx::Error> {
    let value: i64 = sqlx::query_scalar("SELECT revision FROM meta WHERE id = 1")
        .fetch_one(pool)
        .await?;
    if let Ok(revision) = Revision::try_from(value) {
        publish(feed, revision);
    }
    Ok(())
}
