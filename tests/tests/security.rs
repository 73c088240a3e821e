//! Security end to end, on real processes: a 3-node cluster serving TLS
//! (certificates made here with `openssl`), with client tokens and a peer
//! token. Tokens get what their grants say and nothing else; calls without
//! a known token are refused; a client that does not trust the cluster's CA,
//! or reaches a node by a name its certificate does not hold, cannot
//! connect; a node whose certificate comes from another CA gets nothing
//! from its peers; plaintext off loopback is refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_client::{
    Client, ClientOptions, Code, Error, Message, SubscriberSettings, SubscriptionSettings, TopicSettings,
};
use ferry_tests::{binary, eventually, ferry, free_addr, token_hash, Ferryd, TempDir};

const ADMIN: &str = "admin-0123456789abcdef";
const PRODUCER: &str = "producer-0123456789abcdef";
const CONSUMER: &str = "consumer-0123456789abcdef";
const SANDBOX: &str = "sandbox-0123456789abcdef";
const PEER: &str = "peer-0123456789abcdef0123";

/// Runs openssl, failing the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA `name`.pem/.key in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    let subject = format!("/CN={name}");
    let out = format!("{name}.pem");
    openssl(dir, &["req", "-x509", "-new", "-key", &key, "-out", &out, "-days", "2", "-subj", &subject]);
}

/// A certificate `name`.pem/.key signed by `ca`, for `san` (e.g. `IP:127.0.0.1`).
fn make_cert(dir: &Path, ca: &str, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let key = format!("{name}.key");
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    let csr = format!("{name}.csr");
    openssl(dir, &["req", "-new", "-key", &key, "-out", &csr, "-subj", &format!("/CN={name}")]);
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).expect("write ext");
    let (ca_pem, ca_key, pem) = (format!("{ca}.pem"), format!("{ca}.key"), format!("{name}.pem"));
    let args = ["x509", "-req", "-in", &csr, "-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial"];
    openssl(dir, &[&args[..], &["-out", &pem, "-days", "2", "-extfile", &ext]].concat());
    (dir.join(pem), dir.join(key))
}

fn auth_file(dir: &Path) -> PathBuf {
    let hash = token_hash;
    let text = format!(
        "[[token]]\nname = \"admin\"\nsha256 = \"{}\"\nadmin = [\"*\"]\ncluster = true\n\n\
         [[token]]\nname = \"producer\"\nsha256 = \"{}\"\npublish = [\"orders\"]\n\n\
         [[token]]\nname = \"consumer\"\nsha256 = \"{}\"\nsubscribe = [\"ord*\"]\n\n\
         [[token]]\nname = \"sandbox\"\nsha256 = \"{}\"\nadmin = [\"sandbox.*\"]\npublish = [\"sandbox.*\"]\nlocks = [\"sandbox.*\"]\n",
        hash(ADMIN),
        hash(PRODUCER),
        hash(CONSUMER),
        hash(SANDBOX)
    );
    let path = dir.join("auth.toml");
    std::fs::write(&path, text).expect("write auth file");
    path
}

fn is(code: Code) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::Status { code: c, .. } if *c == code)
}

fn message(e: &Error) -> String {
    match e {
        Error::Status { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

struct Secured {
    dir: TempDir,
    nodes: Vec<Ferryd>,
    addrs: String,
    ca: Vec<u8>,
}

impl Secured {
    async fn client(&self, token: Option<&str>) -> Client {
        let options =
            ClientOptions { token: token.map(str::to_owned), tls_ca_pem: Some(self.ca.clone()), ..Default::default() };
        Client::connect_with_options(&self.addrs, options).await.expect("connect over TLS")
    }
}

/// Three nodes with TLS, tokens and a peer token; node 3's certificate
/// is signed by `node3_ca` ("ca" for a good one).
fn start(node3_ca: &str) -> Secured {
    let dir = TempDir::new().expect("temp dir");
    make_ca(dir.path(), "ca");
    make_ca(dir.path(), "rogue-ca");
    let auth = auth_file(dir.path());
    let peer_token = dir.path().join("peer.token");
    std::fs::write(&peer_token, PEER).expect("write peer token");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let peers = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
    let mut nodes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let ca = if i == 2 { node3_ca } else { "ca" };
        let (cert, key) = make_cert(dir.path(), ca, &format!("node{}", i + 1), "IP:127.0.0.1");
        let args = [
            "--node-id".to_owned(),
            (i + 1).to_string(),
            "--peers".into(),
            peers.clone(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
            "--tls-ca".into(),
            dir.path().join("ca.pem").display().to_string(),
            "--auth-file".into(),
            auth.display().to_string(),
            "--peer-token-file".into(),
            peer_token.display().to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Ferryd::start_at(&dir.path().join(format!("node{}", i + 1)), addr, &args));
    }
    let ca = std::fs::read(dir.path().join("ca.pem")).expect("read ca");
    Secured { dir, nodes, addrs: addrs.join(","), ca }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_get_what_their_grants_say_over_tls_and_nothing_else() {
    let cluster = start("ca");
    let admin = cluster.client(Some(ADMIN)).await;
    eventually(Duration::from_secs(30), "the cluster forms over TLS", || async {
        let status = admin.cluster_status().await.ok()?;
        status.members.iter().all(|m| m.status.as_ref().is_ok_and(|s| s.leader_id.is_some())).then_some(())
    })
    .await;
    admin.create_topic("orders", TopicSettings::default()).await.expect("admin creates topics");
    admin.create_topic("payroll", TopicSettings::default()).await.expect("admin creates topics");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(30), ..Default::default() };
    admin.create_subscription("billing", "orders", settings.clone()).await.expect("subscription");
    admin.create_subscription("salaries", "payroll", settings).await.expect("subscription");

    // No token, or one the cluster does not know: UNAUTHENTICATED.
    let anonymous = cluster.client(None).await;
    let refused = anonymous.publish("orders", vec![Message::new("x")]).await.expect_err("no token");
    assert!(is(Code::Unauthenticated)(&refused), "{refused:?}");
    let stranger = cluster.client(Some("not-a-token-of-this-cluster")).await;
    let refused = stranger.list_topics().await.expect_err("unknown token");
    assert!(is(Code::Unauthenticated)(&refused), "{refused:?}");

    // The producer publishes to its topic, and nothing else.
    let producer = cluster.client(Some(PRODUCER)).await;
    let published: BTreeSet<String> = (0..20).map(|i| format!("order-{i}")).collect();
    producer.publish("orders", published.iter().cloned().map(Message::new).collect()).await.expect("granted");
    let denied = producer.publish("payroll", vec![Message::new("x")]).await.expect_err("not granted");
    assert!(is(Code::PermissionDenied)(&denied), "{denied:?}");
    assert_eq!(message(&denied), "token \"producer\" may not publish to topic \"payroll\"");
    let denied = producer.pull("billing", 10, Duration::ZERO).await.expect_err("may not consume");
    assert!(
        is(Code::PermissionDenied)(&denied) && message(&denied).contains("subscribe to topic \"orders\""),
        "{denied:?}"
    );
    let denied = producer.create_topic("mine", TopicSettings::default()).await.expect_err("may not create");
    assert!(is(Code::PermissionDenied)(&denied), "{denied:?}");
    assert_eq!(producer.list_topics().await.expect("any token reads the catalog").len(), 2);

    // The consumer streams and acks its subscription, and nothing else.
    let consumer = cluster.client(Some(CONSUMER)).await;
    let mut subscriber = consumer.subscribe("billing", SubscriberSettings::default()).await.expect("subscribe");
    let mut received = BTreeSet::new();
    while received.len() < published.len() {
        let next = tokio::time::timeout(Duration::from_secs(20), subscriber.next()).await.expect("a message in time");
        let delivered = next.expect("the stream goes on").expect("no error");
        received.insert(String::from_utf8_lossy(&delivered.message.message.data).into_owned());
        delivered.ack();
    }
    assert_eq!(received, published);
    subscriber.close().await;
    let denied = consumer.pull("salaries", 10, Duration::ZERO).await.expect_err("another topic's subscription");
    assert!(is(Code::PermissionDenied)(&denied), "{denied:?}");
    let denied = consumer.publish("orders", vec![Message::new("x")]).await.expect_err("may not publish");
    assert!(is(Code::PermissionDenied)(&denied), "{denied:?}");
    let backup = cluster.dir.path().join("backup").display().to_string();
    let denied = consumer.backup(&backup).await.expect_err("not a cluster admin");
    assert!(is(Code::PermissionDenied)(&denied) && message(&denied).contains("administer the cluster"), "{denied:?}");
    assert!(!Path::new(&backup).exists(), "a refused call changes nothing");

    // Dead-lettering writes to another topic: the creator must be allowed to.
    let sandbox = cluster.client(Some(SANDBOX)).await;
    sandbox.create_topic("sandbox.x", TopicSettings::default()).await.expect("its own topics");
    let sneaky =
        SubscriptionSettings { dead_letter_topic: "payroll".into(), max_delivery_attempts: 5, ..Default::default() };
    let denied =
        sandbox.create_subscription("sneaky", "sandbox.x", sneaky.clone()).await.expect_err("payroll is not its topic");
    assert_eq!(message(&denied), "token \"sandbox\" may not publish to topic \"payroll\"");
    assert!(admin.get_subscription("sneaky").await.is_err(), "nothing was created");
    // Nor by an update of a subscription it may administer.
    sandbox.create_subscription("sandbox.sub", "sandbox.x", SubscriptionSettings::default()).await.expect("its own");
    let denied = sandbox.update_subscription("sandbox.sub", sneaky, &["dead_letter_policy"]).await;
    assert_eq!(
        message(&denied.expect_err("payroll is not its topic")),
        "token \"sandbox\" may not publish to topic \"payroll\""
    );
    let kept = admin.get_subscription("sandbox.sub").await.expect("get");
    assert!(kept.settings.dead_letter_topic.is_empty(), "a refused update changes nothing");
    let denied = sandbox.update_topic("orders", TopicSettings::default(), &["retention_seconds"]).await;
    assert!(is(Code::PermissionDenied)(&denied.expect_err("not its topic")));

    // Bookmarks: made and deleted by whoever administers the topic; seeking
    // to one is consuming.
    let denied = consumer.create_bookmark("ord-mark", "billing", Default::default()).await;
    assert!(is(Code::PermissionDenied)(&denied.expect_err("a consumer does not administer orders")));
    admin.create_bookmark("ord-mark", "billing", Default::default()).await.expect("the admin may");
    consumer.seek_to_bookmark("billing", "ord-mark").await.expect("a consumer may seek its subscription");
    let denied = sandbox.seek_to_bookmark("billing", "ord-mark").await;
    assert!(is(Code::PermissionDenied)(&denied.expect_err("not its subscription")));
    let denied = consumer.delete_bookmark("ord-mark").await;
    assert!(is(Code::PermissionDenied)(&denied.expect_err("a consumer does not administer orders")));
    admin.delete_bookmark("ord-mark").await.expect("the admin may");

    // Locks by name: taken, listed and released only where granted.
    let held = sandbox.acquire_lock("sandbox.leader", "me", Duration::from_secs(30)).await.expect("granted");
    assert!(held.granted, "{held:?}");
    let denied =
        consumer.acquire_lock("sandbox.leader", "thief", Duration::from_secs(30)).await.expect_err("not its lock");
    assert!(is(Code::PermissionDenied)(&denied), "{denied:?}");
    let denied = consumer.release_lock("sandbox.leader", "me").await.expect_err("not its lock");
    assert!(is(Code::PermissionDenied)(&denied), "{denied:?}");
    assert!(consumer.list_locks().await.expect("list").is_empty(), "a token sees only the locks it may take");
    assert_eq!(sandbox.list_locks().await.expect("list").len(), 1);

    // The CLI takes the token and the CA; without the CA it cannot talk TLS.
    let ca = cluster.dir.path().join("ca.pem").display().to_string();
    let listed = ferry(&cluster.addrs, &["--token", ADMIN, "--tls-ca", &ca, "topic", "list"], b"");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("payroll"));
    let plaintext = ferry(&cluster.addrs, &["--token", ADMIN, "topic", "list"], b"");
    assert!(!plaintext.status.success(), "a plaintext client gets nothing from a TLS node");

    // A token is not a peer: the internal services are for the nodes.
    let mut raft = ferry_proto::internal::raft_client::RaftClient::new(
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.addrs.split(',').next().expect("addr")))
            .expect("endpoint")
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&cluster.ca)),
            )
            .expect("tls")
            .connect()
            .await
            .expect("connect"),
    );
    let mut request = tonic::Request::new(ferry_proto::internal::VoteRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {ADMIN}").parse().expect("metadata"));
    let refused = raft.vote(request).await.expect_err("not a peer");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    drop(cluster.nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_are_refused_by_clients_and_by_peers() {
    // Node 3's certificate comes from another CA: its peers will not talk to it.
    let cluster = start("rogue-ca");
    let admin = cluster.client(Some(ADMIN)).await;
    admin.create_topic("orders", TopicSettings::default()).await.expect("nodes 1 and 2 form a quorum");
    let status = admin.cluster_status().await.expect("status");
    let node3 = status.members.iter().find(|m| m.node_id == 3).expect("node 3 is a member");
    assert!(node3.status.is_err(), "node 3 cannot be reached over TLS by its peers: {node3:?}");
    // Nodes 1 and 2 will not talk to it: its certificate is not from their CA.
    let refused_by_peers = || cluster.nodes[..2].iter().any(|n| n.log_text().contains("UnknownIssuer"));
    eventually(Duration::from_secs(20), "a peer refuses node 3's certificate", || async {
        refused_by_peers().then_some(())
    })
    .await;
    let on_third = Client::connect_with_options(
        cluster.addrs.split(',').nth(2).expect("node 3"),
        ClientOptions { token: Some(ADMIN.into()), tls_ca_pem: Some(cluster.ca.clone()), ..Default::default() },
    )
    .await;
    assert!(on_third.is_err(), "a client that trusts the cluster's CA will not talk to node 3 either");

    // A client that trusts another CA cannot connect to a good node.
    let rogue_ca = std::fs::read(cluster.dir.path().join("rogue-ca.pem")).expect("read");
    let first = cluster.addrs.split(',').next().expect("addr").to_owned();
    let options = ClientOptions { token: Some(ADMIN.into()), tls_ca_pem: Some(rogue_ca), ..Default::default() };
    let refused = Client::connect_with_options(&first, options).await.expect_err("untrusted server");
    assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");

    // Nor one that reaches a node by a name its certificate does not hold.
    let port = first.rsplit(':').next().expect("port");
    let options =
        ClientOptions { token: Some(ADMIN.into()), tls_ca_pem: Some(cluster.ca.clone()), ..Default::default() };
    let wrong_name = Client::connect_with_options(&format!("localhost:{port}"), options).await;
    let refused = wrong_name.expect_err("the certificate names 127.0.0.1, not localhost");
    assert!(format!("{refused:?}").contains("NotValidForName"), "{refused:?}");

    // Plaintext off loopback is refused at start.
    let out = Command::new(binary("ferryd"))
        .args(["--data-dir", &cluster.dir.path().join("plain").display().to_string(), "--listen", "0.0.0.0:0"])
        .output()
        .expect("run ferryd");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("--insecure-plaintext"), "{said}");
}
