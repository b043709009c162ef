//! `moqt token`: make keys and tokens in the moq-token format the relay's `--auth-key` verifies
//! (and that the reference implementation's tools read), so auth needs no other tool.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moqt::auth::{Claims, Key, KeyAlgorithm, Pattern, Patterns};

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Make a new key (JWK) and write it to --out, or print it.
    Generate(GenerateArgs),
    /// Sign a token granting publish/subscribe patterns under a root; prints it.
    Sign(SignArgs),
    /// Verify a token with a key; prints its claims.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// HS256 (shared secret), EdDSA or ES256 (the relay needs only the public half).
    #[arg(long, default_value = "HS256")]
    algorithm: KeyAlgorithm,
    /// Key ID written into the key and every token it signs.
    #[arg(long)]
    id: Option<String>,
    /// Where to write the key (base64url JWK, as moq-token writes it). Default: stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the verify-only public half here (EdDSA, ES256).
    #[arg(long)]
    public: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SignArgs {
    /// The key file (JWK, JSON or base64url).
    #[arg(long)]
    key: PathBuf,
    /// The root the patterns are relative to; the session URL path must be under or above it.
    #[arg(long, default_value = "")]
    root: String,
    /// A pattern the holder may publish (`alice`, `cams/*`, `**`); repeatable.
    #[arg(long)]
    publish: Vec<Pattern>,
    /// A pattern the holder may subscribe to; repeatable.
    #[arg(long)]
    subscribe: Vec<Pattern>,
    /// Seconds until the token, and any session it opened, expires. 0: never.
    #[arg(long, default_value_t = 3600)]
    expires: u64,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The key file.
    #[arg(long)]
    key: PathBuf,
    /// The token.
    token: String,
}

pub fn run(args: TokenArgs) -> Result<()> {
    match args.command {
        TokenCommand::Generate(args) => {
            let key = Key::generate(args.algorithm, args.id)?;
            write_or_print(args.out.as_ref(), &key.to_base64())?;
            if let Some(path) = &args.public {
                let public = key.public()?;
                write_or_print(Some(path), &public.to_base64())?;
            }
            Ok(())
        }
        TokenCommand::Sign(args) => {
            let key = Key::from_file(&args.key).context("--key")?;
            let now = SystemTime::now();
            let claims = Claims {
                root: args.root,
                publish: args.publish.into_iter().collect::<Patterns>(),
                subscribe: args.subscribe.into_iter().collect::<Patterns>(),
                expires: (args.expires > 0).then(|| now + Duration::from_secs(args.expires)),
                issued: Some(now),
                not_before: None,
            };
            println!("{}", key.sign(&claims)?);
            Ok(())
        }
        TokenCommand::Verify(args) => {
            let key = Key::from_file(&args.key).context("--key")?;
            let claims = key.verify(args.token.trim())?;
            let list = |p: &Patterns| p.iter().map(|p| format!("{:?}", p.as_str())).collect::<Vec<_>>().join(", ");
            let secs = |t: Option<SystemTime>| {
                t.map_or("none".to_string(), |t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string())
            };
            println!("root: {:?}", claims.root);
            println!("publish: [{}]", list(&claims.publish));
            println!("subscribe: [{}]", list(&claims.subscribe));
            println!("expires: {}", secs(claims.expires));
            Ok(())
        }
    }
}

fn write_or_print(path: Option<&PathBuf>, text: &str) -> Result<()> {
    match path {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}
