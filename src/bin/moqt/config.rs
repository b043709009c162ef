//! `moqt relay --config FILE.toml`: the relay's flags as a file, plus the session bounds that have
//! no flag. A flag given on the command line wins over the file; relative file names in the file
//! are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use moqt::auth::Pattern;
use moqt::session::SessionConfig;
use serde::Deserialize;

use anyhow::{Context, Result, bail};

use super::RelayArgs;

/// The longest config file read.
const MAX_CONFIG_LEN: u64 = 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RelayFile {
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    hop_id: Option<u64>,
    goaway_uri: Option<String>,
    tls: TlsSection,
    cluster: ClusterSection,
    auth: AuthSection,
    limits: LimitsSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct TlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    generate: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ClusterSection {
    connect: Vec<String>,
    tls_fingerprint: Vec<String>,
    tls_disable_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct AuthSection {
    public: Vec<String>,
    public_publish: Vec<String>,
    public_subscribe: Vec<String>,
    key: Option<PathBuf>,
}

/// Session bounds (see `moqt::session::SessionConfig` for what each one guards).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    max_message_size: Option<usize>,
    max_subscriptions: Option<usize>,
    max_announce_requests: Option<usize>,
    max_announced: Option<usize>,
    max_groups_in_flight: Option<usize>,
    setup_timeout_secs: Option<f64>,
    control_timeout_secs: Option<f64>,
    drain_timeout_secs: Option<f64>,
}

impl RelayFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let what = || path.display().to_string();
        let size = std::fs::metadata(path).with_context(what)?.len();
        if size > MAX_CONFIG_LEN {
            bail!("{}: larger than {MAX_CONFIG_LEN} bytes", path.display());
        }
        let text = std::fs::read_to_string(path).with_context(what)?;
        let mut file: RelayFile = toml::from_str(&text).with_context(what)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file_name in [&mut file.tls.cert, &mut file.tls.key, &mut file.auth.key].into_iter().flatten() {
            *file_name = base.join(&*file_name);
        }
        Ok(file)
    }

    /// Fills every setting `args` left unset from the file; returns the session bounds.
    pub fn merge_into(self, args: &mut RelayArgs) -> Result<LimitsSection> {
        fn fill<T>(flag: &mut Option<T>, file: Option<T>) {
            if flag.is_none() {
                *flag = file;
            }
        }
        fn fill_all<T>(flag: &mut Vec<T>, file: Vec<T>) {
            if flag.is_empty() {
                *flag = file;
            }
        }
        let patterns = |texts: Vec<String>| -> Result<Vec<Pattern>> {
            texts.iter().map(|t| Pattern::parse(t).context("[auth]")).collect()
        };
        fill(&mut args.listen, self.listen);
        fill(&mut args.http_listen, self.http_listen);
        fill(&mut args.hop_id, self.hop_id);
        fill(&mut args.goaway_uri, self.goaway_uri);
        if args.tls_cert.is_none() && args.tls_generate.is_empty() {
            args.tls_cert = self.tls.cert;
            args.tls_key = self.tls.key;
            args.tls_generate = self.tls.generate;
        }
        fill_all(&mut args.cluster_connect, self.cluster.connect);
        fill_all(&mut args.cluster_tls_fingerprint, self.cluster.tls_fingerprint);
        args.cluster_tls_disable_verify |= self.cluster.tls_disable_verify;
        fill_all(&mut args.auth_public, patterns(self.auth.public)?);
        fill_all(&mut args.auth_public_publish, patterns(self.auth.public_publish)?);
        fill_all(&mut args.auth_public_subscribe, patterns(self.auth.public_subscribe)?);
        fill(&mut args.auth_key, self.auth.key);
        Ok(self.limits)
    }
}

impl LimitsSection {
    /// Applies the bounds that were set, checking each is usable.
    pub fn apply(&self, session: &mut SessionConfig) -> Result<()> {
        let count = |name: &str, value: Option<usize>, target: &mut usize| -> Result<()> {
            match value {
                Some(0) => bail!("[limits] {name} must be at least 1"),
                Some(value) => {
                    *target = value;
                    Ok(())
                }
                None => Ok(()),
            }
        };
        let seconds = |name: &str, value: Option<f64>, target: &mut Duration| -> Result<()> {
            match value {
                Some(s) if !(0.001..=86_400.0).contains(&s) => {
                    bail!("[limits] {name} must be between 0.001 and 86400 seconds")
                }
                Some(s) => {
                    *target = Duration::from_secs_f64(s);
                    Ok(())
                }
                None => Ok(()),
            }
        };
        count("max_message_size", self.max_message_size, &mut session.max_message_size)?;
        count("max_subscriptions", self.max_subscriptions, &mut session.max_subscriptions)?;
        count("max_announce_requests", self.max_announce_requests, &mut session.max_announce_requests)?;
        count("max_announced", self.max_announced, &mut session.max_announced)?;
        count("max_groups_in_flight", self.max_groups_in_flight, &mut session.max_groups_in_flight)?;
        seconds("setup_timeout_secs", self.setup_timeout_secs, &mut session.setup_timeout)?;
        seconds("control_timeout_secs", self.control_timeout_secs, &mut session.control_timeout)?;
        seconds("drain_timeout_secs", self.drain_timeout_secs, &mut session.drain_timeout)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_parses_and_applies() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("a toml block in the README") + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let file: RelayFile = toml::from_str(&readme[start..end]).unwrap();
        assert_eq!(file.hop_id, Some(7));
        let mut session = SessionConfig::default();
        file.limits.apply(&mut session).unwrap();
        assert_eq!(session.max_subscriptions, 1024);
    }

    #[test]
    fn out_of_range_limits_are_refused() {
        let file: RelayFile = toml::from_str("[limits]\nmax_subscriptions = 0\n").unwrap();
        assert!(
            file.limits.apply(&mut SessionConfig::default()).unwrap_err().to_string().contains("max_subscriptions")
        );
        let file: RelayFile = toml::from_str("[limits]\ndrain_timeout_secs = -1.0\n").unwrap();
        assert!(
            file.limits.apply(&mut SessionConfig::default()).unwrap_err().to_string().contains("drain_timeout_secs")
        );
        assert!(toml::from_str::<RelayFile>("[tls]\ncertificate = \"x\"\n").is_err(), "unknown keys are errors");
    }
}
