//! The proxy against a real echo server over loopback sockets. Clients leave
//! from distinct 127.0.0.x addresses, as the nodes of a loopback cluster do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

use super::Proxy;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the echo server");
    let addr = listener.local_addr().expect("echo server address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

fn source(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind the source address");
    socket.connect(to).await.expect("connect to the proxy")
}

/// Sends `text` and waits up to `limit` for it to come back.
async fn round_trip(stream: &mut TcpStream, text: &[u8], limit: Duration) -> Option<Vec<u8>> {
    stream.write_all(text).await.expect("write through the proxy");
    let mut back = vec![0; text.len()];
    timeout(limit, stream.read_exact(&mut back)).await.ok().map(|read| {
        read.expect("read through the proxy");
        back
    })
}

async fn proxy() -> Proxy {
    let target = echo_server().await;
    Proxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), target, None).expect("start the proxy")
}

#[tokio::test]
async fn bytes_pass_both_ways_unchanged() {
    let proxy = proxy().await;
    let mut stream = connect_from(source(2), proxy.listen_addr()).await;
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let back = round_trip(&mut stream, &big, Duration::from_secs(10)).await;
    assert_eq!(back.as_deref(), Some(&big[..]));
}

#[tokio::test]
async fn a_cut_source_gets_nothing_until_healed_and_other_sources_are_untouched() {
    let proxy = proxy().await;
    let mut cut = connect_from(source(2), proxy.listen_addr()).await;
    let mut other = connect_from(source(3), proxy.listen_addr()).await;
    proxy.set(source(2), |fault| fault.cut = true);

    assert_eq!(round_trip(&mut other, b"hello", Duration::from_secs(5)).await.as_deref(), Some(&b"hello"[..]));
    assert_eq!(round_trip(&mut cut, b"held", Duration::from_millis(500)).await, None, "a cut link passed bytes");

    proxy.heal();
    let mut back = vec![0; 4];
    timeout(Duration::from_secs(5), cut.read_exact(&mut back))
        .await
        .expect("held bytes flow after healing")
        .expect("read the held bytes");
    assert_eq!(back, b"held", "the bytes held during the cut arrive after it");
}

#[tokio::test]
async fn a_delay_holds_back_each_direction() {
    let proxy = proxy().await;
    let mut stream = connect_from(source(2), proxy.listen_addr()).await;
    let delay = Duration::from_millis(300);
    proxy.set(source(2), |fault| fault.delay = delay);

    let started = Instant::now();
    assert!(round_trip(&mut stream, b"slow", Duration::from_secs(5)).await.is_some());
    assert!(started.elapsed() >= delay * 2, "round trip took {:?}, under twice the delay", started.elapsed());

    proxy.heal();
    let started = Instant::now();
    assert!(round_trip(&mut stream, b"fast", Duration::from_secs(5)).await.is_some());
    assert!(started.elapsed() < delay, "healed round trip still took {:?}", started.elapsed());
}

#[tokio::test]
async fn loss_costs_a_retransmission_timeout() {
    let proxy = proxy().await;
    let mut stream = connect_from(source(2), proxy.listen_addr()).await;
    proxy.set(source(2), |fault| fault.loss_percent = 100);

    let started = Instant::now();
    assert!(round_trip(&mut stream, b"lossy", Duration::from_secs(5)).await.is_some(), "loss must delay, not drop");
    assert!(started.elapsed() >= super::RETRANSMIT_TIMEOUT * 2, "took {:?}", started.elapsed());
}
