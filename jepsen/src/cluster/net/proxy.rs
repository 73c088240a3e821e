//! A fault-injecting TCP proxy in front of one node. Every connection to the
//! node's advertised address passes through it, and faults are set per
//! source address — the peer a connection comes from — so traffic between
//! two particular nodes can be cut, slowed or made lossy without the kernel's
//! help.
//!
//! Loopback mode (no root) uses it for every network fault. Namespace mode
//! uses it for delay only (this kernel has no netem); there it listens inside
//! the node's namespace, so iptables still sees the peers' own addresses.
//!
//! Faults act on chunks as they are read, both ways of a connection:
//! - cut: nothing passes until healed, and the bytes wait, as TCP
//!   retransmission would make them; connections stay open (as with iptables
//!   DROP, the ends notice only through their own timeouts).
//! - delay: each chunk is held back for the delay, in order.
//! - loss: a chunk is held back one retransmission timeout with the given
//!   probability, which is what a lost segment costs a TCP stream.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Bytes read at a time from either end.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks held per direction of a connection (delayed or waiting out a cut):
/// the bound on a connection's buffered bytes.
const CHUNKS_HELD_MAX: usize = 16;
/// What a lost segment costs: Linux's minimum TCP retransmission timeout.
const RETRANSMIT_TIMEOUT: Duration = Duration::from_millis(200);

/// The faults on traffic from one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFault {
    pub cut: bool,
    pub loss_percent: u32,
    pub delay: Duration,
}

type Table = HashMap<IpAddr, LinkFault>;

/// A running proxy; stops (and drops its connections) when dropped.
#[derive(Debug)]
pub struct Proxy {
    listen: SocketAddr,
    faults: watch::Sender<Table>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `target`; with `namespace`, both
    /// its sockets live in that network namespace (`/run/netns/NAME`).
    pub fn start(listen: SocketAddr, target: SocketAddr, namespace: Option<String>) -> anyhow::Result<Self> {
        let (faults, table) = watch::channel(Table::new());
        let (stop, stopped) = oneshot::channel();
        let (ready, started) = std::sync::mpsc::channel();
        // A thread of its own: entering a namespace is per thread, and every
        // socket this thread makes afterwards is made in that namespace.
        let thread = std::thread::Builder::new().name(format!("proxy {listen}")).spawn(move || {
            let bound = bind(listen, namespace.as_deref());
            let (runtime, listener) = match bound {
                Ok(bound) => bound,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            let _ = ready.send(listener.local_addr().context("the proxy's listening address"));
            runtime.block_on(async {
                tokio::select! {
                    () = serve(listener, target, table) => {}
                    _ = stopped => {}
                }
            });
        })?;
        let listen = started.recv().context("the proxy thread ended before listening")??;
        Ok(Self { listen, faults, stop: Some(stop), thread: Some(thread) })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Sets the faults on traffic from `source` (to and from this node).
    pub fn set(&self, source: IpAddr, change: impl FnOnce(&mut LinkFault)) {
        self.faults.send_modify(|table| change(table.entry(source).or_default()));
    }

    /// Removes every fault; held bytes flow again.
    pub fn heal(&self) {
        self.faults.send_modify(Table::clear);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Enters the namespace (if any), then makes the runtime and the listener.
fn bind(listen: SocketAddr, namespace: Option<&str>) -> anyhow::Result<(tokio::runtime::Runtime, TcpListener)> {
    if let Some(namespace) = namespace {
        let path = format!("/run/netns/{namespace}");
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace {namespace}"))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let listener =
        runtime.block_on(TcpListener::bind(listen)).with_context(|| format!("proxy listening on {listen}"))?;
    Ok((runtime, listener))
}

async fn serve(listener: TcpListener, target: SocketAddr, faults: watch::Receiver<Table>) {
    loop {
        let Ok((inbound, from)) = listener.accept().await else { continue };
        let faults = faults.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else { return };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::join!(
                pump(in_read, out_write, from.ip(), faults.clone()),
                pump(out_read, in_write, from.ip(), faults),
            );
        });
    }
}

/// Copies one direction of a connection from `source`, applying its faults.
/// Reading and writing are apart, so a delay holds many chunks at once
/// rather than slowing the stream to one chunk per delay.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, source: IpAddr, faults: watch::Receiver<Table>) {
    let (held, mut due) = mpsc::channel::<(Instant, Bytes)>(CHUNKS_HELD_MAX);
    let reader = {
        let faults = faults.clone();
        async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            loop {
                let mut chunk = BytesMut::with_capacity(CHUNK_BYTES);
                match from.read_buf(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let fault = faults.borrow().get(&source).copied().unwrap_or_default();
                let mut release = Instant::now() + fault.delay;
                if fault.loss_percent > 0 && rng.gen_range(0..100) < fault.loss_percent {
                    release += RETRANSMIT_TIMEOUT;
                }
                if held.send((release, chunk.freeze())).await.is_err() {
                    return;
                }
            }
        }
    };
    let writer = async move {
        let mut faults = faults;
        while let Some((release, chunk)) = due.recv().await {
            tokio::time::sleep_until(release).await;
            let open = faults.wait_for(|table| !table.get(&source).is_some_and(|f| f.cut)).await;
            drop(open);
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests;
