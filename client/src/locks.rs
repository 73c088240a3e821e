//! Locks: named locks that expire, kept by the cluster, for processes that
//! must not run twice at once (`ferry.v1.Locks`).

use std::time::{Duration, SystemTime};

use crate::options::Conn;
use ferry_proto::v1 as api;
use ferry_proto::v1::locks_client::LocksClient;

use crate::client::{rpc, Client};
use crate::error::{Error, Result};
use crate::types::time_from_micros;

/// A lock as the cluster holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub name: String,
    pub holder: String,
    /// Grows with every change of holder, never with a renewal.
    pub epoch: u64,
    /// When the holder's claim ends unless it renews, on the cluster
    /// leader's clock (compare it with care: clocks differ).
    pub expire_time: SystemTime,
}

/// The answer to [`Client::acquire_lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockGrant {
    /// Whether the asker holds the lock now.
    pub granted: bool,
    /// The asker's lock when granted, the current holder's otherwise.
    pub lock: Lock,
}

fn locks(channel: Conn) -> LocksClient<Conn> {
    LocksClient::new(channel)
}

fn lock_from_api(lock: api::Lock) -> Lock {
    Lock {
        name: lock.name,
        holder: lock.holder,
        epoch: lock.epoch,
        expire_time: time_from_micros(lock.expire_time_unix_micros),
    }
}

impl Client {
    /// Takes lock `name` for `holder` for `ttl` (whole seconds, 1..=300), or
    /// renews it if `holder` has it. Not granted while another holder's lock
    /// runs. Renew within a third of `ttl` to keep it through a slow call.
    pub async fn acquire_lock(&self, name: &str, holder: &str, ttl: Duration) -> Result<LockGrant> {
        let ttl_seconds = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX).max(1);
        let request = api::AcquireLockRequest { name: name.to_owned(), holder: holder.to_owned(), ttl_seconds };
        let response = self.router().call(rpc!(locks, acquire_lock, request)).await?;
        let lock = response.lock.ok_or_else(|| Error::Protocol("an acquire-lock answer without its lock".into()))?;
        Ok(LockGrant { granted: response.granted, lock: lock_from_api(lock) })
    }

    /// Ends `holder`'s lock on `name` at once; returns whether it held it.
    pub async fn release_lock(&self, name: &str, holder: &str) -> Result<bool> {
        let request = api::ReleaseLockRequest { name: name.to_owned(), holder: holder.to_owned() };
        Ok(self.router().call(rpc!(locks, release_lock, request)).await?.released)
    }

    /// Every lock the cluster keeps, in name order (expired ones too, until
    /// they are taken or make room for others).
    pub async fn list_locks(&self) -> Result<Vec<Lock>> {
        let response = self.router().call(rpc!(locks, list_locks, api::ListLocksRequest {})).await?;
        Ok(response.locks.into_iter().map(lock_from_api).collect())
    }
}
