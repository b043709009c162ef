//! The command's media side: `moqt catalog` prints a hang broadcast's catalog as it changes;
//! `moqt publish --media fmp4` publishes a fragmented MP4 from stdin as a hang broadcast and
//! `moqt subscribe --media fmp4` writes one to stdout.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use moqt::Path;
use moqt::media::{
    CatalogReader, CatalogSettings, Container, Fmp4Export, Fmp4Import, ImportContainer, MediaBroadcast, MediaEvent,
    MediaTrackReader, ReadOptions,
};
use moqt::model::{GroupStart, OriginProducer, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::progress::Progress;
use crate::{ClientArgs, connect, flush, flush_and_close};

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

/// `--media`: how stdin / stdout carry media.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MediaFormat {
    /// Fragmented MP4 (ffmpeg `-f mp4 -movflags cmaf+frag_keyframe+empty_moov+default_base_moof`).
    Fmp4,
}

/// `--container` of a media publish.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainerArg {
    /// Each frame: a varint timestamp (µs) and the codec payload (hang's default).
    Legacy,
    /// Each frame: one moof+mdat fragment, the init segment in the catalog.
    Cmaf,
}

/// `--start` of a media subscribe.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartArg {
    /// The group in progress (a live viewer).
    Live,
    /// The oldest group the publisher or relay still keeps (a recorder).
    Oldest,
}

/// Publishes a fragmented MP4 from stdin as a hang broadcast at `path`.
pub async fn publish_fmp4(client: &ClientArgs, path: Path, container: ContainerArg, realtime: bool) -> Result<()> {
    let origin = OriginProducer::default();
    let mut media = MediaBroadcast::new()?;
    let _published = origin.publish(path, media.consume(), Route::local())?;
    let client = connect(client, Some(origin.consume()), None).await?;
    let container = match container {
        ContainerArg::Legacy => ImportContainer::Legacy,
        ContainerArg::Cmaf => ImportContainer::Cmaf,
    };
    let mut import = Fmp4Import::new(container);
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 64 * 1024];
    let mut progress = Progress::new("moqt publish");
    // --realtime: the first frame's time against the wall clock.
    let mut clock: Option<(tokio::time::Instant, u64)> = None;
    let mut frames = 0u64;
    loop {
        let n = stdin.read(&mut buf).await.context("reading stdin")?;
        if n == 0 {
            break;
        }
        for frame in import.push(&mut media, &buf[..n]).context("reading the fragmented MP4")? {
            if realtime {
                let (start, first) = *clock.get_or_insert((tokio::time::Instant::now(), frame.pts_us));
                let due = start + Duration::from_micros(frame.pts_us.saturating_sub(first));
                tokio::time::sleep_until(due).await;
            }
            progress.frame(frame.payload.len());
            import.write(frame).context("publishing a frame")?;
            frames += 1;
        }
    }
    import.finish().context("the end of the fragmented MP4")?;
    drop(progress);
    eprintln!(
        "moqt publish: {frames} frames of {:?}",
        media.catalog().renditions().map(|(n, _)| n).collect::<Vec<_>>()
    );
    // What was written reaches the relay before the broadcast ends, and then the broadcast's end
    // (the catalog track's) before the session closes.
    flush(&client).await;
    media.finish()?;
    flush_and_close(client).await;
    Ok(())
}

/// How long a rendition taken out of the catalog may still deliver what was on its way before
/// its track is ended here (a publisher usually ends the track right after; one that keeps it
/// open must not hold the file open).
const REMOVED_TRACK_GRACE: Duration = Duration::from_secs(2);

/// Resolves once `leave` holds an instant and it has passed; never if the sender is gone.
async fn left(leave: &mut tokio::sync::watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        let at = *leave.borrow_and_update();
        if let Some(at) = at {
            tokio::time::sleep_until(at).await;
            return;
        }
        if leave.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Writes renditions of the hang broadcast `path` to stdout as one fragmented MP4, following the
/// catalog, until they end (see [`Fmp4Export`] for what a catalog change writes).
pub async fn subscribe_fmp4(client: &ClientArgs, path: Path, renditions: &[String], start: StartArg) -> Result<()> {
    let remote = OriginProducer::default();
    let _client = connect(client, None, Some(remote.clone())).await?;
    let broadcast =
        remote.consume().announced(&path).await.context("the session ended before the broadcast was announced")?;
    let mut catalogs = CatalogReader::subscribe(&broadcast, CatalogSettings::default())
        .await
        .context("cannot subscribe to catalog.json (is this a hang broadcast?)")?;
    // The first catalog that has what was asked for (or anything, when nothing was).
    let catalog = loop {
        let catalog = catalogs.next().await?.context("the catalog track ended before it named a rendition")?;
        let found = if renditions.is_empty() {
            catalog.renditions().next().is_some()
        } else {
            renditions.iter().all(|name| catalog.rendition(name).is_some())
        };
        if found {
            break catalog;
        }
    };
    let names: Vec<String> = if renditions.is_empty() {
        catalog
            .renditions()
            .filter(|(_, r)| !matches!(r.container(), Container::Unknown(_)))
            .map(|(n, _)| n.to_owned())
            .collect()
    } else {
        renditions.to_vec()
    };
    let mut export = Fmp4Export::new(&catalog, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
    let options = ReadOptions {
        start: match start {
            StartArg::Live => GroupStart::Latest,
            StartArg::Oldest => GroupStart::Floor(0),
        },
        ..Default::default()
    };
    // One reader task per rendition, into one channel: the file interleaves them as they come.
    // Each takes its rendition's container from the catalog as it changes.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let mut readers = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let mut reader = MediaTrackReader::subscribe(&broadcast, &catalog, name, options)
            .await
            .with_context(|| format!("cannot subscribe to {name}"))?;
        let container = catalog.rendition(name).map(|r| r.container().clone()).unwrap_or_default();
        let (containers, mut container_rx) = tokio::sync::watch::channel(container);
        let (leave, mut leave_rx) = tokio::sync::watch::channel(None);
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                if container_rx.has_changed().unwrap_or(false) {
                    let container = container_rx.borrow_and_update().clone();
                    if let Err(err) = reader.set_container(container) {
                        eprintln!("moqt subscribe: the new container is not readable: {err}");
                    }
                }
                let next = tokio::select! {
                    biased;
                    next = reader.next() => next,
                    // Out of the catalog and still open past the grace: ended here.
                    () = left(&mut leave_rx) => Ok(None),
                };
                let end = !matches!(next, Ok(Some(_)));
                if tx.send((index, next)).await.is_err() || end {
                    break;
                }
            }
        });
        readers.push((containers, leave));
    }
    drop(tx);
    // Later catalogs, from a task of their own (a read is not cut off halfway).
    let (catalog_tx, mut catalog_rx) = tokio::sync::mpsc::channel(8);
    let catalog_task = tokio::spawn(async move {
        loop {
            match catalogs.next().await {
                Ok(Some(catalog)) => {
                    if catalog_tx.send(catalog).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                // The catalog track itself failed: no more updates.
                Err(moqt::media::MediaError::Model(err)) => {
                    eprintln!("moqt subscribe: the catalog track ended: {err}");
                    break;
                }
                // A malformed catalog: the next one may be fine.
                Err(err) => eprintln!("moqt subscribe: a catalog update skipped: {err}"),
            }
        }
    });
    eprintln!("moqt subscribe: writing {names:?} as fragmented MP4");
    let mut stdout = tokio::io::stdout();
    let mut progress = Progress::new("moqt subscribe");
    let mut reported: HashSet<String> = HashSet::new();
    let mut following = true;
    loop {
        let bytes = tokio::select! {
            catalog = catalog_rx.recv(), if following => {
                let Some(catalog) = catalog else {
                    following = false;
                    continue;
                };
                let update = export.update(&catalog)?;
                for &index in &update.removed {
                    eprintln!("moqt subscribe: {} left the catalog: its track ends", names[index]);
                    readers[index].1.send_replace(Some(tokio::time::Instant::now() + REMOVED_TRACK_GRACE));
                }
                for &index in &update.changed {
                    eprintln!("moqt subscribe: {} changed: a new init segment before its next keyframe", names[index]);
                }
                // A CMAF rendition's fragments are read against the init segment the catalog
                // now gives, changed or not with its codec fields.
                for ((containers, _), name) in readers.iter().zip(&names) {
                    if let Some(rendition) = catalog.rendition(name) {
                        let container = rendition.container();
                        containers.send_if_modified(|current| {
                            let modified = current != container;
                            if modified {
                                *current = container.clone();
                            }
                            modified
                        });
                    }
                }
                for name in update.not_written {
                    if reported.insert(name.clone()) {
                        eprintln!(
                            "moqt subscribe: {name} joined the catalog: not written (the file keeps the tracks it \
                             started with; subscribe with --renditions {name} for it)"
                        );
                    }
                }
                Vec::new()
            }
            next = rx.recv() => {
                let Some((index, next)) = next else { break };
                match next {
                    Ok(Some(event)) => {
                        if let MediaEvent::Gap(gap) = &event {
                            eprintln!(
                                "moqt subscribe: {} groups {}..={} lost: {:?}",
                                names[index], gap.start, gap.end, gap.reason
                            );
                        }
                        export.push(index, event)?
                    }
                    Ok(None) => {
                        eprintln!("moqt subscribe: {} ended", names[index]);
                        export.end(index)?
                    }
                    Err(err) => bail!("{}: {err}", names[index]),
                }
            }
        };
        for bytes in bytes {
            progress.frame(bytes.len());
            stdout.write_all(&bytes).await.context("writing stdout")?;
        }
    }
    catalog_task.abort();
    for bytes in export.finish()? {
        stdout.write_all(&bytes).await.context("writing stdout")?;
    }
    stdout.flush().await.context("writing stdout")?;
    Ok(())
}
