//! The integration-test harness: a real Kafka-compatible broker (tansu) and a real
//! `redis-server`, started on free ports for this test process, or external ones named by
//! `TEST_KAFKA_BROKERS` and `TEST_REDIS_URL`.
//!
//! Services are spawned from one thread that lives as long as the process, under
//! `setpriv --pdeathsig KILL`, so they die with the test process however it ends.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::time::Instant;

use trendstream::config::Config;

pub mod tls;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Services {
    pub brokers: String,
    pub redis_url: String,
}

/// The broker and Redis shared by every test in this process.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let brokers = std::env::var("TEST_KAFKA_BROKERS")
            .unwrap_or_else(|_| start_tansu(free_port(), None).0);
        let redis_url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| start_redis(free_port()));
        Services { brokers, redis_url }
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Spawns a command from the services thread, to die with this process.
pub fn spawn_service(program: &str, args: &[String]) -> u32 {
    spawn_service_in(program, args, None)
}

/// Spawns a command in directory `cwd` from the services thread, to die with this process.
pub fn spawn_service_in(program: &str, args: &[String], cwd: Option<&std::path::Path>) -> u32 {
    type Request = (
        String,
        Vec<String>,
        Option<PathBuf>,
        mpsc::Sender<std::io::Result<u32>>,
    );
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            // Children are kept here: their parent-death signal follows this thread.
            let mut children = Vec::new();
            for (program, args, cwd, reply) in rx {
                let mut command = Command::new("setpriv");
                if let Some(cwd) = cwd {
                    command.current_dir(cwd);
                }
                let child = command
                    .args(["--pdeathsig", "KILL", "--"])
                    .arg(&program)
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                let _ = reply.send(
                    child
                        .as_ref()
                        .map(Child::id)
                        .map_err(|e| std::io::Error::new(e.kind(), e.to_string())),
                );
                children.extend(child);
            }
            // The sender lives in a static: this loop ends only with the process.
            drop(children);
        });
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((
            program.to_owned(),
            args.to_vec(),
            cwd.map(ToOwned::to_owned),
            reply_tx,
        ))
        .expect("services thread alive");
    reply_rx
        .recv()
        .expect("services thread replies")
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// Kills a process started with [`spawn_service`].
pub fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    // Wait until it is really gone, so that its port is free again.
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let deadline = std::time::Instant::now() + DEADLINE;
    while proc.exists()
        && std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| !s.contains(") Z"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} did not die"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tansu_binary() -> String {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = PathBuf::from(home).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        cargo_bin.display().to_string()
    } else {
        "tansu".to_owned()
    }
}

/// Starts tansu on `port` (with memory storage, or SQLite at `db`) and waits until it answers.
/// Returns its address and process id.
pub fn start_tansu(port: u16, db: Option<&std::path::Path>) -> (String, u32) {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut args = vec![
        "broker".to_owned(),
        "--listener-url".to_owned(),
        url.clone(),
        "--advertised-listener-url".to_owned(),
        url,
    ];
    // tansu opens the SQLite file relative to its working directory.
    if let Some(db) = db {
        args.push("--storage-engine".into());
        args.push(format!(
            "sqlite://{}",
            db.file_name().expect("file").to_string_lossy()
        ));
    }
    let pid = spawn_service_in(&tansu_binary(), &args, db.and_then(|d| d.parent()));
    wait_for_port(port);
    (format!("127.0.0.1:{port}"), pid)
}

/// Starts `redis-server` on `port`, keeping nothing on disk, and waits until it answers.
pub fn start_redis(port: u16) -> String {
    start_redis_with(port, &[])
}

/// Starts `redis-server` on `port` with extra arguments, and waits until it answers.
pub fn start_redis_with(port: u16, extra: &[&str]) -> String {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn_service("redis-server", &args);
    wait_for_port(port);
    format!("redis://127.0.0.1:{port}")
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:016x}")
}

pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

pub fn producer(brokers: &str) -> FutureProducer {
    producer_with(brokers, &[("linger.ms", "0")])
}

/// A producer with the given librdkafka properties.
pub fn producer_with(brokers: &str, properties: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        config.set(*key, *value);
    }
    config.create().expect("producer")
}

/// Produces one record to a given partition and waits for the acknowledgement.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    value: &[u8],
    headers: &[(&str, &str)],
) {
    let mut hdrs = OwnedHeaders::new();
    for (k, v) in headers {
        hdrs = hdrs.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(value)
                .headers(hdrs),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("cannot produce to {topic}: {e}"));
}

/// A consumer of its own group that reads from the start, commits nothing, and has the
/// settings trendstream uses against tansu, with more librdkafka `properties` (security
/// settings, say).
pub fn reader(brokers: &str, properties: &[(String, String)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("reader consumer")
}

/// Reads `topic` from the beginning until `count` records have arrived, and then for as long
/// as it takes to see that no more follow within `settle`.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    count: usize,
    settle: Duration,
) -> Vec<OwnedMessage> {
    read_topic_with(brokers, &[], topic, count, settle).await
}

/// [`read_topic`] by a reader with more librdkafka `properties`.
pub async fn read_topic_with(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    count: usize,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let consumer = reader(brokers, properties);
    consumer.subscribe(&[topic]).expect("subscribe");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut quiet_since: Option<std::time::Instant> = None;
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    out.push(m.detach());
                    quiet_since = None;
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
            if out.len() >= count {
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= settle {
                    return out;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "read {} of {count} records from {topic}",
                out.len()
            );
        }
    })
    .await
    .expect("reader task")
}

/// How long [`window_records`] and [`dead_letters`] wait for more records before they take
/// what they have read as all there is.
const QUIET: Duration = Duration::from_millis(500);

/// The window records a run of `config` wrote: `count` at least, read until no more follow
/// for a moment.
pub async fn window_records(config: &Config, count: usize) -> Vec<OwnedMessage> {
    let k = config.kafka();
    read_topic(&k.brokers, &k.output_topic, count, QUIET).await
}

/// The dead letters a run of `config` wrote: `count` at least, read until no more follow for a
/// moment.
pub async fn dead_letters(config: &Config, count: usize) -> Vec<OwnedMessage> {
    let k = config.kafka();
    read_topic(&k.brokers, &k.dead_letter_topic, count, QUIET).await
}

/// What a run of `config` wrote: `windows` window records at least, then `dead` dead letters
/// at least, each read until no more follow for a moment.
pub async fn outputs(
    config: &Config,
    windows: usize,
    dead: usize,
) -> (Vec<OwnedMessage>, Vec<OwnedMessage>) {
    (
        window_records(config, windows).await,
        dead_letters(config, dead).await,
    )
}

/// The group's committed offset of each partition of `topic` (`None` when nothing committed).
pub async fn committed(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    try_committed(brokers, group, topic, partitions)
        .await
        .expect("committed offsets")
}

/// The sum of the group's committed offsets over the partitions of `topic`, or `None` when the
/// broker does not answer (it may be restarting).
pub async fn committed_sum(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Option<i64> {
    let offsets = try_committed(brokers, group, topic, partitions).await?;
    Some(offsets.into_iter().flatten().sum())
}

async fn try_committed(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Option<Vec<Option<i64>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    tokio::task::spawn_blocking(move || {
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok()?;
        let offsets = got
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect();
        Some(offsets)
    })
    .await
    .ok()?
}

/// Starts a three-master Redis Cluster (append-only files under `dir`); returns the node URLs
/// and process ids.
pub fn start_redis_cluster(dir: &std::path::Path) -> (Vec<String>, Vec<u32>) {
    let mut urls = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let (url, pid) = start_cluster_node(dir, free_port());
        urls.push(url);
        pids.push(pid);
    }
    let addrs: Vec<&str> = urls
        .iter()
        .map(|u| u.trim_start_matches("redis://"))
        .collect();
    create_cluster(&[], &addrs);
    (urls, pids)
}

/// Starts (or restarts, with its state under `dir`) one cluster node on `port`.
pub fn start_cluster_node(dir: &std::path::Path, port: u16) -> (String, u32) {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let node_dir = node_dir.display().to_string();
    let port_text = port.to_string();
    let args: Vec<String> = [
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
        &node_dir,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pid = spawn_service("redis-server", &args);
    wait_for_port(port);
    (format!("redis://127.0.0.1:{port}"), pid)
}

/// Runs `command` to its end and checks that it succeeded; `what` names it in the failure,
/// with what it printed.
pub fn run_ok(command: &mut Command, what: &str) -> std::process::Output {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Makes the nodes at `addrs` (`host:port`) a cluster of masters with `redis-cli`, given `cli`
/// (its TLS and user arguments, if any), and waits until each says the cluster is healthy.
pub fn create_cluster(cli: &[&str], addrs: &[&str]) {
    run_ok(
        Command::new("redis-cli")
            .args(cli)
            .args(["--cluster", "create"])
            .args(addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"]),
        "cluster create",
    );
    for addr in addrs {
        wait_cluster_ok_with(cli, addr);
    }
}

/// Waits until the node at `url` says the cluster is healthy.
pub fn wait_cluster_ok(url: &str) {
    wait_cluster_ok_with(&[], url.trim_start_matches("redis://"));
}

fn wait_cluster_ok_with(cli: &[&str], addr: &str) {
    let port = addr.rsplit(':').next().expect("port");
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let out = Command::new("redis-cli")
            .args(cli)
            .args(["-p", port, "cluster", "info"])
            .output()
            .expect("redis-cli");
        if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cluster at {addr} not ok"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `condition` holds, checking every 50 ms, failing after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_every(what, Duration::from_millis(50), DEADLINE, condition).await;
}

/// Waits until `condition` holds, checking every `every`, failing after `deadline`: for
/// conditions that are costly to check (each check a new client of the broker) and progress
/// that a loaded broker may make slowly.
pub async fn eventually_every<F, Fut>(
    what: &str,
    every: Duration,
    deadline: Duration,
    mut condition: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + deadline;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(every).await;
    }
}

/// A configuration for one test: the given TOML over the defaults, with the services, its own
/// topics, group and key prefix, and short timeouts.
pub fn config(toml: &str) -> Config {
    let s = services();
    let base = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
[kafka.consumer]
"session.timeout.ms" = "6000"
"fetch.wait.max.ms" = "10"
[redis]
url = "{redis}"
key_prefix = "{prefix}:"
[batch]
max_wait = "50ms"
"#,
        brokers = s.brokers,
        redis = s.redis_url,
        group = unique("group"),
        prefix = unique("t"),
    );
    let merged = merge_toml(&merge_toml(&base, &own_topics()), toml);
    Config::from_toml(&merged).unwrap_or_else(|e| panic!("test config: {e}\n{merged}"))
}

/// Danmu only, in 10 s windows that do not overlap and close at the first record past them;
/// `more` is added to the configuration.
pub fn tumbling_danmu(more: &str) -> Config {
    config(&format!(
        "{more}\n[window]\nwidth = \"10s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n[streams.text]\nenabled = false"
    ))
}

/// `overlay` laid over `base`, table by table.
fn merge_toml(base: &str, overlay: &str) -> String {
    fn merge(a: &mut toml::Table, b: toml::Table) {
        for (k, v) in b {
            match (a.get_mut(&k), v) {
                (Some(toml::Value::Table(at)), toml::Value::Table(bt)) => merge(at, bt),
                (_, v) => {
                    a.insert(k, v);
                }
            }
        }
    }
    let mut a: toml::Table = base.parse().expect("base TOML");
    merge(&mut a, overlay.parse().expect("overlay TOML"));
    toml::to_string(&a).expect("TOML")
}

/// trendstream running in this process, stopped with [`Running::stop`].
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), trendstream::run::RunError>>,
}

pub fn start(config: Config) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(trendstream::run::run(config, async {
        let _ = stopped.await;
    }));
    Running {
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// Asks for a graceful stop and returns how `run` ended.
    pub async fn stop(mut self) -> Result<(), trendstream::run::RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("run task")
    }

    /// Drops `run` wherever it is, like a crash (it leaves the group as its consumer drops).
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Creates the input, output and dead-letter topics of `config`, with `partitions` each.
pub async fn create_topics(config: &Config, partitions: i32) {
    let brokers = &config.kafka().brokers;
    for (_, s) in config.enabled_streams() {
        create_topic(brokers, &s.topic, partitions).await;
    }
    create_topic(brokers, &config.kafka().output_topic, 1).await;
    create_topic(brokers, &config.kafka().dead_letter_topic, 1).await;
}

/// [`create_topics`], then what most tests take next: the broker's address and the danmu
/// topic's name.
pub async fn danmu_input(config: &Config, partitions: i32) -> (String, String) {
    create_topics(config, partitions).await;
    let topic = config.streams()["danmu"].topic.clone();
    (config.kafka().brokers.clone(), topic)
}

/// TOML that gives a test its own topics.
fn own_topics() -> String {
    format!(
        r#"
[kafka]
output_topic = "{}"
dead_letter_topic = "{}"
[streams.danmu]
topic = "{}"
[streams.text]
topic = "{}"
"#,
        unique("out"),
        unique("dlq"),
        unique("danmu"),
        unique("text")
    )
}

pub fn header<'m>(m: &'m OwnedMessage, key: &str) -> Option<&'m str> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| std::str::from_utf8(v).expect("UTF-8 header"))
}

/// `GET path` on `addr`: the status line and the body.
pub async fn http_get(addr: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The sum of every series of the metric `name` (its full name, like
/// `trendstream_records_total`) in the text of `/metrics` whose labels contain every one of
/// `labels` (`key="value"` each, or several joined by commas, in the order rendered); `None`
/// when there is none.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series_labels, value) = match rest.strip_prefix('{') {
            Some(labelled) => match labelled.split_once("} ") {
                Some((series_labels, value)) => (series_labels, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        let series_labels = format!(",{series_labels},");
        let has = |label: &&str| series_labels.contains(&format!(",{label},"));
        if labels.iter().all(has) {
            let value: f64 = value.trim().parse().expect("a metric value");
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

/// [`metric`] of the `/metrics` at `http`.
pub async fn scrape(http: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metric(&http_get(http, "/metrics").await.1, name, labels)
}

/// The process id of the redis-server on `port`.
pub async fn redis_pid(port: u16) -> u32 {
    let mut r = redis(&format!("redis://127.0.0.1:{port}")).await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut r)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("process_id in INFO")
}

pub async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Asks `child` to stop (SIGTERM), waits until it has and returns how it ended.
pub fn terminate(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait")
}
