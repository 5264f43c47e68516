//! Waking the worker's fast loops when the api commits work for them, so a page or a
//! webhook delivery goes out at once rather than at the next tick (which stays the
//! fallback): PostgreSQL by LISTEN/NOTIFY, SQLite by a datagram on a loopback socket.

use std::sync::Arc;

use crate::jobs::JobContext;

/// PostgreSQL: wake a loop as soon as its work is committed (NOTIFY on `channel` at the
/// writing transaction's commit). Reconnects after errors; the fast tick covers gaps.
pub(crate) async fn listen(
    ctx: Arc<JobContext>,
    channel: &'static str,
    wake: Arc<tokio::sync::Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    use sea_orm::sqlx::postgres::PgListener;
    while !*stopped.borrow() {
        let listener = async {
            let mut l = PgListener::connect_with(ctx.db.get_postgres_connection_pool()).await?;
            l.listen(channel).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => {
                // Work committed while no connection listened sent its NOTIFY to nobody:
                // one pass now covers the gap instead of waiting for the tick.
                wake.notify_one();
                l
            }
            Err(err) => {
                tracing::warn!(%err, channel, "cannot LISTEN; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    _ = stopped.changed() => return,
                }
            }
        };
        loop {
            // try_recv, not recv: recv reconnects silently and notifications sent while
            // it was away are lost without a trace. Here a lost connection ends this
            // listener; the next one runs a pass once it listens, covering the gap.
            tokio::select! {
                n = listener.try_recv() => match n {
                    Ok(Some(_)) => wake.notify_one(),
                    Ok(None) => {
                        tracing::warn!(channel, "LISTEN connection lost; reconnecting");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(%err, channel, "LISTEN connection lost");
                        break;
                    }
                },
                _ = stopped.changed() => return,
            }
        }
    }
}

/// SQLite: wake a loop when the api says it committed its work (a datagram naming the
/// channel on this worker's loopback socket). A lost datagram costs a tick, no more.
pub(crate) async fn take_wakes(
    socket: tokio::net::UdpSocket,
    wake: Arc<tokio::sync::Notify>,
    wake_webhooks: Arc<tokio::sync::Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, from)) if from.ip().is_loopback() => {
                    let channel = &buf[..n];
                    if channel == entity::escalation::WAKE_CHANNEL.as_bytes() {
                        wake.notify_one();
                    } else if channel == entity::webhook::WAKE_CHANNEL.as_bytes() {
                        wake_webhooks.notify_one();
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%err, "wake socket failed; the tick goes on");
                    return;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}
