//! The `trendstream` command: `run`, `check-config`, `generate`, `health`, `watch` and `top`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use trendstream::config::{Config, LogFormat};
use trendstream::generate::{generate, Disorder, EventTime, GenerateOptions, MAX_VOCABULARY};
use trendstream::top::{top, TopOptions};
use trendstream::watch::{watch, WatchOptions};

/// mimalloc: the window records, Redis arguments and closed windows of a batch are many small
/// allocations, often freed on another thread than the one that made them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Real-time hot words from Kafka into Redis and Kafka."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the input topics and publish hot words until SIGINT/SIGTERM.
    Run {
        /// Configuration file laid over the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log as JSON lines (overrides log.format).
        #[arg(long)]
        json_logs: bool,
    },
    /// Validate the configuration and print the effective result, secrets redacted.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Produce realistic sample traffic to the input topics.
    Generate(GenerateArgs),
    /// Exit 0 when the HTTP endpoint at --addr answers 200 on --path (a container health
    /// check; the image has no HTTP client).
    Health {
        #[arg(long, default_value = "127.0.0.1:9898")]
        addr: String,
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// Print the live leaderboards from Redis.
    Watch {
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        #[arg(long, default_value = "")]
        key_prefix: String,
        #[arg(long, default_value = "danmu")]
        stream: String,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Show the busiest groups, their words, records/s and lag of running instances, redrawn
    /// in place (from their HTTP endpoint's /api/hot).
    Top {
        /// An instance's HTTP endpoint (http.listen); repeat for more: records/s, lag and
        /// dead letters are summed over them.
        #[arg(long = "url", default_value = "http://127.0.0.1:9898")]
        urls: Vec<String>,
        #[command(flatten)]
        view: ViewArgs,
    },
}

/// What `watch` and `top` show, and how often.
#[derive(Args)]
struct ViewArgs {
    /// Groups to show (per stream), busiest first.
    #[arg(long, default_value_t = 8)]
    groups: usize,
    /// Words per group.
    #[arg(long, default_value_t = 8)]
    terms: usize,
    /// Time between refreshes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Print one frame and exit.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    without_huge_pages();
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Each cause once, after its context, as `{err:#}` would show them.
            eprintln!("trendstream: {}", trendstream::redact::error(&*err));
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` says what
/// to do. mimalloc asks for huge pages for its memory, hands freed memory back to the kernel in
/// smaller pieces, and each huge page faulted in again is zeroed whole: with them off, 1M danmu
/// took 3-5 % less CPU and about 30 MiB less resident memory (BENCHMARKS.md).
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // A kernel or sandbox without the call keeps huge pages: slower, nothing worse.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let _in_runtime = runtime.enter();
    match cli.command {
        Command::Run { config, json_logs } => {
            let shutdown = shutdown_signal();
            let config = Config::load(config.as_deref())?;
            let format = if json_logs {
                LogFormat::Json
            } else {
                config.log().format
            };
            init_logs(&config.log().level, format);
            runtime.block_on(trendstream::run::run(config, shutdown))?;
        }
        Command::CheckConfig { config } => {
            let config = Config::load(config.as_deref())?;
            config.extra_stop_words()?;
            print!("{}", config.redacted().to_toml());
        }
        Command::Generate(args) => {
            init_logs("info", LogFormat::Text);
            let opts = generate_options(args)?;
            let report = runtime.block_on(generate(&opts, shutdown_signal()))?;
            println!(
                "danmu={} posts={} bad={}",
                report.danmu, report.posts, report.bad
            );
        }
        Command::Health { addr, path } => {
            let healthy = trendstream::observe::probe(&addr, &path, Duration::from_secs(3))
                .with_context(|| format!("cannot reach {addr}"))?;
            anyhow::ensure!(healthy, "{addr}{path} did not answer 200");
        }
        Command::Watch {
            redis,
            key_prefix,
            stream,
            view,
        } => {
            let opts = WatchOptions {
                redis_url: redis,
                key_prefix,
                stream,
                groups: view.groups,
                terms: view.terms,
                once: view.once,
                interval: view.interval,
            };
            until_stopped(&runtime, watch(&opts))?;
        }
        Command::Top { urls, view } => {
            let opts = TopOptions {
                urls,
                groups: view.groups,
                terms: view.terms,
                interval: view.interval,
                once: view.once,
            };
            until_stopped(&runtime, top(&opts))?;
        }
    }
    Ok(())
}

fn init_logs(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Runs `work` until it ends, or until a stop signal, which ends it cleanly.
fn until_stopped<E>(
    runtime: &tokio::runtime::Runtime,
    work: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), E> {
    runtime.block_on(async {
        tokio::select! {
            r = work => r,
            () = shutdown_signal() => Ok(()),
        }
    })
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal during start-up asks for a clean stop too instead
/// of killing the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// `KEY=VALUE`, for `-X`.
fn key_value(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{arg:?} is not KEY=VALUE"))
}

/// `trendstream generate`'s arguments.
#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "danmu")]
    danmu_topic: String,
    #[arg(long, default_value = "text")]
    text_topic: String,
    /// Records per second in total (0: as fast as possible).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Records in total (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Number of live rooms.
    #[arg(long, default_value_t = 50)]
    rooms: u32,
    /// Add to each record one or two made-up words, drawn Zipf-like from this many
    /// (0: none), so that the number of distinct terms grows with the run.
    #[arg(long, default_value_t = 0)]
    vocabulary: u32,
    /// Share of records that are text posts.
    #[arg(long, default_value_t = 0.1)]
    text_share: f64,
    /// One malformed record every N records (0: none).
    #[arg(long, default_value_t = 0)]
    bad_every: u64,
    /// Share of records whose event time is moved back by up to --max-delay-ms.
    #[arg(long, default_value_t = 0.0)]
    out_of_order: f64,
    #[arg(long, default_value_t = 3000)]
    max_delay_ms: i64,
    /// Share of records moved back by 5–30 s (late for windows already closed).
    #[arg(long, default_value_t = 0.0)]
    late: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event time of the first record in epoch ms (default: the wall clock at send time).
    #[arg(long)]
    start_ms: Option<i64>,
    /// Event-time step between records with --start-ms.
    #[arg(long, default_value_t = 1)]
    step_ms: i64,
    /// Post texts taken in turn from this file, one a line (real reviews, say), instead of
    /// made-up ones.
    #[arg(long)]
    post_texts: Option<std::path::PathBuf>,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`).
    #[arg(long, default_value_t = 20)]
    linger_ms: u32,
    /// Records per batch at most (librdkafka `batch.num.messages`).
    #[arg(long, default_value_t = 10_000)]
    batch_records: u32,
    /// Compression of the batches: none, lz4, zstd, snappy or gzip.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Any other librdkafka producer property, as KEY=VALUE (repeatable): security
    /// settings, say.
    #[arg(short = 'X', long = "producer-property", value_parser = key_value)]
    producer_property: Vec<(String, String)>,
}

/// The non-blank lines of `--post-texts`, trimmed; at least one.
fn read_post_texts(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("--post-texts ({}): {err}", path.display()))?;
    let texts: Vec<String> = file
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        !texts.is_empty(),
        "--post-texts ({}) holds no text",
        path.display()
    );
    Ok(texts)
}

/// What `generate` is to do, its arguments checked.
fn generate_options(a: GenerateArgs) -> anyhow::Result<GenerateOptions> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.text_share),
        "--text-share ({}) must be between 0 and 1",
        a.text_share
    );
    anyhow::ensure!(a.rooms > 0, "--rooms (0) must be at least 1");
    for (flag, share) in [("--out-of-order", a.out_of_order), ("--late", a.late)] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "{flag} ({share}) must be between 0 and 1"
        );
    }
    anyhow::ensure!(
        a.vocabulary <= MAX_VOCABULARY,
        "--vocabulary ({}) must be at most {MAX_VOCABULARY}",
        a.vocabulary
    );
    let post_texts = match &a.post_texts {
        Some(path) => read_post_texts(path)?,
        None => Vec::new(),
    };
    let producer = [
        ("linger.ms", a.linger_ms.to_string()),
        ("batch.num.messages", a.batch_records.to_string()),
        ("compression.type", a.compression),
    ];
    Ok(GenerateOptions {
        brokers: a.brokers,
        danmu_topic: a.danmu_topic,
        text_topic: a.text_topic,
        rate: a.rate,
        count: a.count,
        rooms: a.rooms,
        vocabulary: a.vocabulary,
        text_share: a.text_share,
        bad_every: a.bad_every,
        seed: a.seed,
        event_time: match a.start_ms {
            Some(start_ms) => EventTime::Fixed {
                start_ms,
                step_ms: a.step_ms,
            },
            None => EventTime::Now,
        },
        disorder: Disorder {
            out_of_order: a.out_of_order,
            max_delay_ms: a.max_delay_ms,
            late: a.late,
        },
        post_texts,
        producer: producer
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain(a.producer_property)
            .collect(),
    })
}
