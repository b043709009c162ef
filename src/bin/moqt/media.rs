//! The command's media side: `moqt catalog` prints a hang broadcast's catalog as it changes.

use anyhow::{Context, Result};
use moqt::Path;
use moqt::media::{CatalogReader, CatalogSettings};
use moqt::model::OriginProducer;

use crate::{ClientArgs, connect};

#[derive(clap::Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Broadcast path.
    #[arg(long)]
    pub broadcast: String,
    /// Exit after this many catalogs (default: follow until the broadcast ends).
    #[arg(long)]
    pub count: Option<u64>,
}

/// Prints each catalog of the broadcast as one line of JSON, as it changes.
pub async fn catalog(args: CatalogArgs) -> Result<()> {
    let wanted = Path::new(&args.broadcast).context("--broadcast")?;
    let remote = OriginProducer::default();
    let _client = connect(&args.client, None, Some(remote.clone())).await?;
    let broadcast =
        remote.consume().announced(&wanted).await.context("the session ended before the broadcast was announced")?;
    let mut catalogs = CatalogReader::subscribe(&broadcast, CatalogSettings::default())
        .await
        .context("cannot subscribe to catalog.json (is this a hang broadcast?)")?;
    let mut printed = 0u64;
    while args.count.is_none_or(|n| printed < n) {
        match catalogs.next().await {
            Ok(Some(catalog)) => {
                println!("{}", String::from_utf8_lossy(&catalog.to_json()));
                printed += 1;
            }
            Ok(None) => break,
            // A malformed catalog is reported; the next one may be fine.
            Err(err) => eprintln!("moqt catalog: {err}"),
        }
    }
    Ok(())
}
