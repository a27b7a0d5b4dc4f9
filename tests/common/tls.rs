//! Secured services: certificates made with `openssl`, `redis-server` over TLS with an ACL
//! user (one node or a cluster), and tansu requiring SCRAM behind a TLS terminator (`socat`,
//! as tansu 0.6 does not serve TLS itself), advertised at the terminator's port.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{free_port, spawn_service, spawn_service_in, tansu_binary, wait_for_port};

/// The ACL user of the secured Redis and the SCRAM user of the secured broker.
pub const USER: &str = "trend";
/// Its password: digits first, so a password read as a number would show.
pub const PASSWORD: &str = "0123-s3cret-pw";

/// A certificate authority and a certificate it signed for `127.0.0.1` and `localhost`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    super::run_ok(
        Command::new("openssl").args(args).current_dir(dir),
        &format!("openssl {args:?}"),
    );
}

/// Makes a certificate authority and a server certificate under `dir`.
pub fn certs(dir: &Path) -> Certs {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes"][..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=trendstream test CA",
            ],
            &days,
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("san.cnf");
    openssl(
        dir,
        &[
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
            ][..],
            &[
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-extfile",
                "san.cnf",
            ],
            &days,
        ]
        .concat(),
    );
    Certs {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The TLS settings of a Redis node, and the ACL: `USER` may do anything, nobody else anything.
fn redis_tls_args(certs: &Certs, port: u16) -> Vec<String> {
    let password = format!(">{PASSWORD}");
    owned(&[
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--tls-cert-file",
        &certs.cert.display().to_string(),
        "--tls-key-file",
        &certs.key.display().to_string(),
        "--tls-ca-cert-file",
        &certs.ca.display().to_string(),
        "--tls-auth-clients",
        "no",
        "--user",
        USER,
        "on",
        &password,
        "~*",
        "&*",
        "+@all",
        "--user",
        "default",
        "off",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
}

/// Starts `redis-server` serving only TLS on a free port, for `USER` only; returns its URL
/// with the user's credentials.
pub fn start_redis_tls(certs: &Certs) -> String {
    let port = free_port();
    spawn_service("redis-server", &redis_tls_args(certs, port));
    wait_for_port(port);
    format!("rediss://{USER}:{PASSWORD}@127.0.0.1:{port}")
}

/// Starts a three-master Redis Cluster serving only TLS (between its nodes too), for `USER`
/// only; returns the node URLs with the user's credentials.
pub fn start_redis_tls_cluster(certs: &Certs, dir: &Path) -> Vec<String> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for port in &ports {
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let mut args = redis_tls_args(certs, *port);
        args.extend(owned(&[
            "--tls-cluster",
            "yes",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &free_port().to_string(),
            "--masteruser",
            USER,
            "--masterauth",
            PASSWORD,
            "--dir",
            &node_dir.display().to_string(),
        ]));
        spawn_service("redis-server", &args);
        wait_for_port(*port);
    }
    let ca = certs.ca.display().to_string();
    let cli = ["--tls", "--cacert", &ca, "--user", USER, "--pass", PASSWORD];
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    super::create_cluster(&cli, &addrs);
    ports
        .iter()
        .map(|port| format!("rediss://{USER}:{PASSWORD}@127.0.0.1:{port}"))
        .collect()
}

/// A tansu that requires SCRAM-SHA-256 from every client, reached through TLS.
pub struct SecureKafka {
    /// The TLS terminator's address, which the broker advertises.
    pub brokers: String,
}

/// Starts tansu on SQLite under `dir` without authentication, creates `topics` and the SCRAM
/// user `USER`, then restarts it requiring authentication behind a TLS terminator.
pub async fn start_secure_tansu(certs: &Certs, dir: &Path, topics: &[(&str, i32)]) -> SecureKafka {
    let db = dir.join("tansu.db");
    let (plain, pid) = super::start_tansu(free_port(), Some(&db));
    for (topic, partitions) in topics {
        super::create_topic(&plain, topic, *partitions).await;
    }
    super::run_ok(
        Command::new(tansu_binary())
            .args(["user", "create", "--broker", &format!("tcp://{plain}")])
            .args([USER, PASSWORD, "--mechanism", "scram256"]),
        "tansu user create",
    );
    super::kill(pid);

    let port = free_port();
    let tls_port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{tls_port}");
    spawn_service_in(
        &tansu_binary(),
        &owned(&[
            "broker",
            "--authentication",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            "sqlite://tansu.db",
        ]),
        Some(dir),
    );
    wait_for_port(port);
    spawn_service(
        "socat",
        &owned(&[
            &format!(
                "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                certs.cert.display(),
                certs.key.display()
            ),
            &format!("TCP:127.0.0.1:{port}"),
        ]),
    );
    wait_for_port(tls_port);
    SecureKafka {
        brokers: format!("127.0.0.1:{tls_port}"),
    }
}

/// The librdkafka properties of a client of [`SecureKafka`] with `password`, trusting `ca`.
pub fn kafka_properties(ca: &Path, password: &str) -> Vec<(String, String)> {
    [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", USER),
        ("sasl.password", password),
        ("ssl.ca.location", &ca.display().to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A connection to the TLS Redis at `url`, trusting `ca`.
pub async fn redis(url: &str, ca: &Path) -> redis::aio::MultiplexedConnection {
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(ca).expect("CA file")),
    };
    redis::Client::build_with_tls(url, certificates)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}
