//! The `moqt` command: a relay, publish / subscribe / announced clients for demos and
//! operations, and a load generator (`bench`). Logs go to stderr (RUST_LOG or -v); exit code 0 on
//! success, 1 on a runtime failure, 2 on bad usage.

mod bench;
mod config;
mod http;
mod join;
mod media;
mod metrics;
mod progress;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use moqt::Path;
use moqt::Version;
use moqt::auth::{AuthConfig, Key, Pattern, Patterns};
use moqt::endpoint::{Client, EndpointConfig, Server};
use moqt::model::{self, BroadcastProducer, OriginProducer, Route, TrackEvent, TrackInfo};
use moqt::reconnect::{ClientState, PersistentClient, ReconnectSettings, Target};
use moqt::relay::{Relay, RelayConfig};
use moqt::transport::tls::{Certificate, ClientTrust, TrustSettings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Parser)]
#[command(name = "moqt", version, about = "moq-lite (Media over QUIC, Lite): relay, publish, subscribe")]
struct Cli {
    /// More logs on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a relay: clients publish to it and subscribe through it.
    Relay(RelayArgs),
    /// Publish a broadcast read from stdin (or a built-in clock).
    Publish(PublishArgs),
    /// Subscribe to a track and write its frames to stdout.
    Subscribe(SubscribeArgs),
    /// Print broadcasts as they are announced and ended.
    Announced(AnnouncedArgs),
    /// Print a hang broadcast's catalog (one JSON line per version of it) as it changes.
    Catalog(media::CatalogArgs),
    /// Load a relay with publishers and subscribers; report throughput, latency, loss.
    Bench(BenchArgs),
    /// Make keys and tokens for the relay's --auth-key (moq-token format).
    Token(token::TokenArgs),
}

#[derive(clap::Args)]
struct RelayArgs {
    /// UDP address to listen on for QUIC (and WebTransport). Default [::]:443.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Read settings from this TOML file (the flags' names in sections, plus [limits]; see the
    /// README). Flags given on the command line win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate (14 days) for these comma-separated host names.
    #[arg(long, value_delimiter = ',', conflicts_with = "tls_cert")]
    tls_generate: Vec<String>,
    /// Plain-HTTP listener serving /certificate.sha256, /health and /metrics (to any origin).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// This relay's Hop ID (default: random).
    #[arg(long)]
    hop_id: Option<u64>,
    /// Join another relay (moqt or moq-relay) into a cluster: moql://host:port/ (repeatable);
    /// `?cost=N` prices the link (default 1; the cheapest route wins).
    #[arg(long)]
    cluster_connect: Vec<String>,
    /// Trust cluster peers by this certificate SHA-256 (hex; repeatable).
    #[arg(long)]
    cluster_tls_fingerprint: Vec<String>,
    /// Skip certificate verification of cluster peers (development only).
    #[arg(long)]
    cluster_tls_disable_verify: bool,
    /// Let sessions without a token publish and subscribe to paths matching this pattern, rooted
    /// at `/` (`**` all, `anon/**`, `rooms/*`); repeatable. With no --auth-* flag every path is open.
    #[arg(long)]
    auth_public: Vec<Pattern>,
    /// Like --auth-public, for publishing only.
    #[arg(long)]
    auth_public_publish: Vec<Pattern>,
    /// Like --auth-public, for subscribing only.
    #[arg(long)]
    auth_public_subscribe: Vec<Pattern>,
    /// On shutdown, send sessions here (GOAWAY New Session URI, e.g. a peer relay's URL).
    /// Default: reconnect to this address.
    #[arg(long)]
    goaway_uri: Option<String>,
    /// Verify `?jwt=` tokens with this key (a moq-token JWK file; see `moqt token`).
    #[arg(long)]
    auth_key: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct ClientArgs {
    /// https://host:port/path (WebTransport), moql://host:port/path (raw QUIC), or
    /// http://host:port/path (development: pin the fingerprint served over plain HTTP).
    url: String,
    /// Skip certificate verification (development only).
    #[arg(long)]
    tls_disable_verify: bool,
    /// Trust only a server certificate with this SHA-256 fingerprint (hex).
    #[arg(long)]
    tls_fingerprint: Option<String>,
    /// Also trust certificates issued by this CA (PEM), besides the platform's trust store.
    #[arg(long)]
    tls_root: Option<PathBuf>,
    /// Offer only this version (moq-lite-03 .. moq-lite-06).
    #[arg(long = "version", value_name = "VERSION")]
    moq_version: Option<Version>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One frame per line of stdin.
    Lines,
    /// Fixed-size chunks of stdin.
    Chunks,
    /// A built-in clock: one frame per second with the time; needs no input.
    Clock,
}

#[derive(clap::Args)]
struct PublishArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Broadcast path, e.g. room/alice.
    #[arg(long)]
    broadcast: String,
    /// Track name.
    #[arg(long, default_value = "video")]
    track: String,
    /// How stdin becomes frames.
    #[arg(long, value_enum, default_value = "lines")]
    format: Format,
    /// Frames per group.
    #[arg(long, default_value_t = 30)]
    group_frames: u64,
    /// Chunk size for --format chunks.
    #[arg(long, default_value_t = 4096)]
    chunk_size: usize,
    /// Publish media from stdin as a hang broadcast (catalog.json + one track per audio or video
    /// track of the input) instead of --format frames.
    #[arg(long, value_enum)]
    media: Option<media::MediaFormat>,
    /// With --media: the hang container of the media tracks.
    #[arg(long, value_enum, default_value = "legacy", requires = "media")]
    container: media::ContainerArg,
    /// With --media: send frames no faster than their timestamps (a file published as if live).
    #[arg(long, requires = "media")]
    realtime: bool,
}

#[derive(clap::Args)]
struct SubscribeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Broadcast path.
    #[arg(long)]
    broadcast: String,
    /// Track name.
    #[arg(long, default_value = "video")]
    track: String,
    /// Exit after this many frames.
    #[arg(long)]
    count: Option<u64>,
    /// Write a hang broadcast's renditions to stdout in this format instead of raw frames,
    /// until they end, following the catalog: a rendition taken out of it ends its track; a
    /// changed configuration (codec, description, size, rate) writes a new init segment
    /// (ftyp+moov, same track ids) before the rendition's next group, as MSE re-initialisation
    /// expects; H.264/H.265 parameter sets then also travel in band, so readers that keep the
    /// first moov (ffmpeg, a file in qtdemux) decode on; a rendition added later is not written
    /// (the file keeps the tracks it started with) but reported on stderr.
    #[arg(long, value_enum)]
    media: Option<media::MediaFormat>,
    /// With --media: the renditions to write (comma-separated track names; default all those
    /// of the first catalog).
    #[arg(long, value_delimiter = ',', requires = "media")]
    renditions: Vec<String>,
    /// With --media: start at the live edge or at the oldest group still kept.
    #[arg(long, value_enum, default_value = "live", requires = "media")]
    start: media::StartArg,
}

#[derive(clap::Args)]
struct AnnouncedArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only broadcasts under this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Publishers, one broadcast (bench/N) each.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers per publisher, each on its own session.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Bytes per frame.
    #[arg(long, default_value_t = 4096)]
    frame_size: usize,
    /// Frames per second per publisher.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Frames per group.
    #[arg(long, default_value_t = 30)]
    group_frames: u64,
    /// Seconds to publish.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The relay's process ID, to report its CPU per delivered GB and peak memory.
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Broadcasts are PREFIX/N (two benches against one relay need different prefixes).
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Subscriber sessions set up at once.
    #[arg(long, default_value_t = 16)]
    connect_concurrency: usize,
    /// Sessions sharing one UDP socket (1: one each, as separate viewers have; more spares the
    /// load generator's memory and file descriptors with thousands of sessions).
    #[arg(long, default_value_t = 1)]
    sessions_per_socket: usize,
    /// Measure join time instead: N subscribers, one after another, each timed from its
    /// session's start to its first frame of a live track (the other load options shape that
    /// track; --subscribers and --publishers are ignored).
    #[arg(long, value_name = "N")]
    joins: Option<usize>,
    /// With --joins: every join reuses one client endpoint, so TLS resumes the previous session.
    #[arg(long, requires = "joins")]
    resume: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    // Colours only on a terminal: a log file or a pipe gets plain `key=value` text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("moqt: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Relay(args) => relay(args).await,
            Command::Publish(args) => publish(args).await,
            Command::Subscribe(args) => subscribe(args).await,
            Command::Announced(args) => announced(args).await,
            Command::Catalog(args) => media::catalog(args).await,
            Command::Bench(args) => bench(args).await,
            Command::Token(args) => token::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("moqt: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

use anyhow::{Context, Result, anyhow, bail};

async fn relay(mut args: RelayArgs) -> Result<()> {
    let limits = match args.config.clone() {
        Some(path) => Some(config::RelayFile::load(&path)?.merge_into(&mut args)?),
        None => None,
    };
    let listen = args.listen.unwrap_or(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 443)));
    let cert = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Certificate::from_pem_files(cert, key)?,
        _ if !args.tls_generate.is_empty() => Certificate::generate(&args.tls_generate)?,
        _ => bail!("give --tls-cert and --tls-key, or --tls-generate HOSTS"),
    };
    let server = Server::bind(listen, &cert, EndpointConfig::default()).context("cannot start the QUIC listener")?;
    let _reload = match (&args.tls_cert, &args.tls_key) {
        (Some(chain), Some(key)) => {
            Some(server.watch_certificate_files(chain.clone(), key.clone(), Duration::from_secs(5)))
        }
        _ => None,
    };
    let mut config = RelayConfig { auth: auth_config(&args)?, ..Default::default() };
    if let Some(limits) = &limits {
        limits.apply(&mut config.session)?;
    }
    let drain = config.session.drain_timeout;
    if let Some(hop) = args.hop_id {
        config.hop_id = hop;
    }
    let relay = Relay::new(config);
    eprintln!(
        "moqt relay: listening on {} (QUIC), certificate sha256 {}",
        server.local_addr()?,
        cert.fingerprint_hex()
    );
    if let Some(http) = args.http_listen {
        let listener = tokio::net::TcpListener::bind(http).await.with_context(|| format!("cannot bind {http}"))?;
        eprintln!("moqt relay: http on {http} (/certificate.sha256, /health, /metrics)");
        tokio::spawn(http::serve(listener, cert.fingerprint_hex(), relay.clone()));
    }
    let mut peers = Vec::new();
    if !args.cluster_connect.is_empty() {
        if !args.cluster_tls_disable_verify && args.cluster_tls_fingerprint.is_empty() {
            bail!("--cluster-connect needs --cluster-tls-fingerprint or --cluster-tls-disable-verify");
        }
        let trust = ClientTrust::from_settings(&TrustSettings {
            disable_verify: args.cluster_tls_disable_verify,
            fingerprints: args.cluster_tls_fingerprint.clone(),
            ca_file: None,
        })
        .context("--cluster-tls-fingerprint")?;
        for url in &args.cluster_connect {
            let (bare, cost) = moqt::relay::peer_url_cost(url).map_err(anyhow::Error::msg)?;
            let target = Target::from_url(&bare).await.map_err(anyhow::Error::msg)?;
            let bind = any_port(target.addr.is_ipv6());
            let mut endpoint = EndpointConfig::default();
            endpoint.session.cost = cost;
            peers.push(
                relay
                    .connect_peer(bind, &trust, target, endpoint)
                    .with_context(|| format!("cannot peer with {url}"))?,
            );
            eprintln!("moqt relay: peering with {url}");
        }
    }
    let running = relay.clone();
    let serve = tokio::spawn(async move { running.run(server).await });
    wait_for_signal().await;
    let uri = args.goaway_uri.clone().unwrap_or_default();
    let target = if uri.is_empty() { "back here".to_string() } else { uri.clone() };
    eprintln!("moqt relay: shutting down: GOAWAY to every session (reconnect {target}), draining");
    relay.shutdown(&uri);
    // Sessions leave as they follow GOAWAY; whoever is left at the deadline is closed with it.
    let deadline = Instant::now() + drain + Duration::from_secs(1);
    while relay.metrics().sessions_active > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("moqt relay: {} sessions left at exit", relay.metrics().sessions_active);
    serve.abort();
    drop(peers);
    Ok(())
}

/// The relay's auth settings from its flags.
fn auth_config(args: &RelayArgs) -> Result<AuthConfig> {
    let key = match &args.auth_key {
        Some(path) => Some(Key::from_file(path).context("--auth-key")?),
        None => None,
    };
    let public = |only: &[Pattern]| -> Patterns { args.auth_public.iter().chain(only).cloned().collect() };
    Ok(AuthConfig {
        public_publish: public(&args.auth_public_publish),
        public_subscribe: public(&args.auth_public_subscribe),
        key,
    })
}

/// The whole chain, "what we were doing: why: deeper why", without repeating a cause that an error
/// already includes in its own text (several library errors do: "cannot read FILE: REASON").
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The wildcard address, any port: where a client or peer connection binds.
fn any_port(ipv6: bool) -> SocketAddr {
    if ipv6 {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn client(args: &ClientArgs) -> Result<Client> {
    let trust = ClientTrust::from_settings(&TrustSettings {
        disable_verify: args.tls_disable_verify,
        fingerprints: args.tls_fingerprint.iter().cloned().collect(),
        ca_file: args.tls_root.clone(),
    })?;
    let mut config = EndpointConfig::default();
    if let Some(version) = args.moq_version {
        config.versions = vec![version];
    }
    Ok(Client::new(any_port(args.url.contains('[')), &trust, config)?)
}

/// The development form of the reference relay: `http://host:port/path` means "fetch the
/// certificate's SHA-256 from http://host:port/certificate.sha256, then WebTransport to
/// https://host:port/path pinned to it".
async fn development_url(url: &str) -> Result<(String, String)> {
    let parsed = url::Url::parse(url).with_context(|| format!("malformed URL {url:?}"))?;
    let fingerprint = http::fetch_fingerprint(&parsed).await?;
    let mut secure = parsed;
    secure.set_scheme("https").map_err(|()| anyhow!("{url}: cannot make an https URL of it"))?;
    Ok((secure.to_string(), fingerprint))
}

/// Resolves a development http:// URL (pinning the fingerprint it serves) and the target.
async fn resolve(args: &ClientArgs) -> Result<(ClientArgs, Target)> {
    let mut args = args.clone();
    if args.url.starts_with("http://") {
        let (url, fingerprint) = development_url(&args.url).await?;
        args = ClientArgs { url, tls_fingerprint: Some(fingerprint), tls_disable_verify: false, ..args };
    }
    let target = Target::from_url(&args.url).await.map_err(anyhow::Error::msg)?;
    Ok((args, target))
}

async fn connect(
    args: &ClientArgs,
    publish: Option<model::OriginConsumer>,
    subscribe: Option<OriginProducer>,
) -> Result<PersistentClient> {
    let (args, target) = resolve(args).await?;
    let args = &args;
    let mut client = PersistentClient::start(client(args)?, target, publish, subscribe, ReconnectSettings::default());
    loop {
        match client.state() {
            ClientState::Connected { version, .. } => {
                tracing::info!(%version, "connected");
                return Ok(client);
            }
            ClientState::GaveUp { reason } => return Err(anyhow::Error::msg(reason)),
            ClientState::Reconnecting { reason, attempt, .. } if attempt >= 3 => {
                bail!("cannot connect to {}: {reason}", args.url);
            }
            _ => {}
        }
        client.next_state().await;
    }
}

async fn publish(args: PublishArgs) -> Result<()> {
    let path = Path::new(&args.broadcast).context("--broadcast")?;
    if let Some(media::MediaFormat::Fmp4) = args.media {
        return media::publish_fmp4(&args.client, path, args.container, args.realtime).await;
    }
    let origin = OriginProducer::default();
    let broadcast = BroadcastProducer::default();
    let mut track = broadcast.create_track(&args.track, TrackInfo::default()).context("--track")?;
    let _published = origin.publish(path, broadcast.consume(), Route::local())?;
    let client = connect(&args.client, Some(origin.consume()), None).await?;
    let started = Instant::now();
    let group_frames = args.group_frames.max(1);
    let mut group: Option<model::GroupProducer> = None;
    let mut in_group = 0u64;
    let mut frames = 0u64;
    let mut progress = progress::Progress::new("moqt publish");
    // The closure borrows the group until the input ends.
    {
        let mut write = |payload: Bytes| -> Result<()> {
            if group.is_none() || in_group >= group_frames {
                if let Some(done) = group.take() {
                    done.finish()?;
                }
                group = Some(track.append_group()?);
                in_group = 0;
            }
            let timestamp = started.elapsed().as_millis() as u64;
            progress.frame(payload.len());
            if let Some(group) = group.as_mut() {
                group.write(timestamp, payload)?;
            }
            in_group += 1;
            frames += 1;
            Ok(())
        };
        match args.format {
            Format::Lines => {
                let mut lines = BufReader::new(tokio::io::stdin()).lines();
                while let Some(line) = lines.next_line().await.context("reading stdin")? {
                    write(Bytes::from(line))?;
                }
            }
            Format::Chunks => {
                let mut stdin = tokio::io::stdin();
                let mut buf = vec![0u8; args.chunk_size.max(1)];
                loop {
                    let n = stdin.read(&mut buf).await.context("reading stdin")?;
                    if n == 0 {
                        break;
                    }
                    write(Bytes::copy_from_slice(&buf[..n]))?;
                }
            }
            Format::Clock => loop {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                write(Bytes::from(format!("{}", now.as_secs())))?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            },
        }
    }
    if let Some(group) = group.take() {
        group.finish()?;
    }
    drop(progress);
    eprintln!("moqt publish: {frames} frames; waiting 2 s for subscribers to catch up");
    tokio::time::sleep(Duration::from_secs(2)).await;
    track.finish();
    flush_and_close(client).await;
    Ok(())
}

/// How long a publisher waits at the end for what it wrote to reach the relay.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits (up to [`FLUSH_TIMEOUT`]) until what the client's ended tracks owe the relay has reached
/// it; says on stderr what did not.
async fn flush(client: &PersistentClient) {
    let Some(session) = client.session() else { return };
    match tokio::time::timeout(FLUSH_TIMEOUT, session.flushed()).await {
        Ok(moqt::session::FlushOutcome::Delivered) => {}
        Ok(moqt::session::FlushOutcome::Undelivered(lost)) => {
            eprintln!("moqt publish: {lost} streams were never acknowledged by the relay")
        }
        Err(_) => eprintln!("moqt publish: not everything reached the relay within {FLUSH_TIMEOUT:?}"),
    }
}

/// [`flush`], then closes the session: a close any earlier would cut the ended tracks short at
/// the relay (its subscribers would see the session end instead of the tracks').
async fn flush_and_close(client: PersistentClient) {
    flush(&client).await;
    client.shutdown().await;
}

async fn subscribe(args: SubscribeArgs) -> Result<()> {
    let wanted = Path::new(&args.broadcast).context("--broadcast")?;
    if let Some(media::MediaFormat::Fmp4) = args.media {
        return media::subscribe_fmp4(&args.client, wanted, &args.renditions, args.start).await;
    }
    let remote = OriginProducer::default();
    let _client = connect(&args.client, None, Some(remote.clone())).await?;
    let broadcast =
        remote.consume().announced(&wanted).await.context("the session ended before the broadcast was announced")?;
    let mut track =
        broadcast.subscribe_track(&args.track).await.with_context(|| format!("cannot subscribe to {}", args.track))?;
    let mut stdout = tokio::io::stdout();
    let mut count = 0u64;
    let mut progress = progress::Progress::new("moqt subscribe");
    while args.count.is_none_or(|n| count < n) {
        match track.next_group().await? {
            Some(TrackEvent::Group(mut group)) => {
                while let Some(frame) = group.next_frame().await? {
                    stdout.write_all(&frame.payload).await.context("writing stdout")?;
                    stdout.write_all(b"\n").await.context("writing stdout")?;
                    progress.frame(frame.payload.len());
                    count += 1;
                    if args.count.is_some_and(|n| count >= n) {
                        break;
                    }
                }
                stdout.flush().await.context("writing stdout")?;
            }
            Some(TrackEvent::Gap(gap)) => {
                eprintln!("moqt subscribe: groups {}..={} lost: {:?}", gap.start, gap.end, gap.reason)
            }
            None => break,
        }
    }
    Ok(())
}

async fn announced(args: AnnouncedArgs) -> Result<()> {
    let prefix = Path::new(&args.prefix).context("--prefix")?;
    let remote = OriginProducer::default();
    let _client = connect(&args.client, None, Some(remote.clone())).await?;
    let mut announcements = remote.consume_scoped(prefix, 0);
    while let Some(announcement) = announcements.next_announcement().await {
        match announcement {
            model::Announcement::Start { path, .. } => println!("+ {path}"),
            model::Announcement::Update { path, .. } => println!("~ {path}"),
            model::Announcement::End { path } => println!("- {path}"),
        }
    }
    Ok(())
}

async fn bench(args: BenchArgs) -> Result<()> {
    if !(args.seconds > 0.0 && args.seconds < 86_400.0) {
        bail!("--seconds must be between 0 and 86400");
    }
    let (client_args, target) = resolve(&args.client).await?;
    if let Some(joins) = args.joins {
        let config = join::JoinConfig {
            joins,
            frame_size: args.frame_size,
            fps: args.fps,
            group_frames: args.group_frames,
            resume: args.resume,
            prefix: args.prefix,
        };
        let report = join::run(target, config, || client(&client_args)).await?;
        match args.json {
            true => println!("{}", report.json()),
            false => print!("{}", report.table()),
        }
        return Ok(());
    }
    let config = bench::BenchConfig {
        publishers: args.publishers,
        subscribers: args.subscribers,
        frame_size: args.frame_size,
        fps: args.fps,
        group_frames: args.group_frames,
        duration: Duration::from_secs_f64(args.seconds),
        relay_pid: args.relay_pid,
        prefix: args.prefix,
        connect_concurrency: args.connect_concurrency,
        sessions_per_socket: args.sessions_per_socket,
    };
    let report = bench::run(target, config, || client(&client_args)).await?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
