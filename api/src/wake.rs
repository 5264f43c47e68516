//! Waking the workers on SQLite. PostgreSQL wakes them with NOTIFY at commit; SQLite has
//! no channel between processes, so a request that commits work for the workers (a page
//! to send, a webhook delivery) ends with a datagram to each live worker's loopback wake
//! socket (`worker_heartbeats.wake_addr`). A lost datagram costs the worker's tick (250
//! ms), never the work: the tick stays the fallback.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use entity::clock::Clock;
use entity::worker_heartbeat;
use sea_orm::{ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QuerySelect};

/// How long the list of workers to wake is reused before it is read again: a worker
/// started meanwhile is woken from its first heartbeat plus this, the tick covering it.
const TARGETS_FOR: Duration = Duration::from_secs(1);
/// A worker whose heartbeat is older than this is not woken (it has stopped).
const LIVE_FOR: TimeDelta = TimeDelta::minutes(2);

pub struct WorkerWakes {
    socket: UdpSocket,
    reads: DatabaseConnection,
    clock: Arc<dyn Clock>,
    targets: tokio::sync::Mutex<(Option<Instant>, Vec<SocketAddr>)>,
}

impl WorkerWakes {
    /// On SQLite, a sender on a loopback socket of its own; on PostgreSQL, none (NOTIFY).
    pub fn for_database(
        reads: &DatabaseConnection,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Option<Arc<Self>>> {
        if reads.get_database_backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        Ok(Some(Arc::new(WorkerWakes {
            socket,
            reads: reads.clone(),
            clock,
            targets: tokio::sync::Mutex::new((None, Vec::new())),
        })))
    }

    /// The wake sockets of the workers that beat recently; loopback addresses only.
    async fn targets(&self) -> Vec<SocketAddr> {
        let mut cached = self.targets.lock().await;
        if cached.0.is_some_and(|at| at.elapsed() < TARGETS_FOR) {
            return cached.1.clone();
        }
        let since = self.clock.now() - LIVE_FOR;
        let found: Vec<Option<String>> = worker_heartbeat::Entity::find()
            .select_only()
            .column(worker_heartbeat::Column::WakeAddr)
            .filter(worker_heartbeat::Column::LastBeatAt.gte(since))
            .filter(worker_heartbeat::Column::WakeAddr.is_not_null())
            .into_tuple()
            .all(&self.reads)
            .await
            .unwrap_or_default();
        let addrs: Vec<SocketAddr> = found
            .into_iter()
            .flatten()
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .filter(|a| a.ip().is_loopback())
            .collect();
        *cached = (Some(Instant::now()), addrs.clone());
        addrs
    }

    /// Tells every live worker to look at `channels` now.
    pub async fn wake(&self, channels: &[&'static str]) {
        for addr in self.targets().await {
            for channel in channels {
                // Best effort: a full buffer or a stopped worker leaves it to the tick.
                let _ = self.socket.send_to(channel.as_bytes(), addr);
            }
        }
    }
}
