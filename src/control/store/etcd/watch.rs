//! The watch loop behind [`EtcdStore::watch`](super::EtcdStore::watch): one etcd watch stream at a time, from the
//! revision after the last one delivered, on the members in turn; fragments of a large batch joined so that a
//! revision is never delivered in halves; progress notices as liveness.

use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, EventType, WatchOptions};

use crate::control::store::{Change, FeedEvent};

/// How often the stream asks its member for a progress notice.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A member that sends nothing — no change, no progress notice — for this long is taken for hung (a frozen VM, a
/// stalled disk, dropped packets: its connection stays open), and the watch resumes on another member.
const SILENCE: Duration = Duration::from_millis(1500);

/// The watch loop behind [`EtcdStore::watch`].
pub(super) async fn follow(
    members: Vec<(String, ConnectOptions)>,
    first: usize,
    prefix: String,
    after: u64,
    timeout: Duration,
    tx: tokio::sync::mpsc::Sender<FeedEvent>,
) {
    let mut next = after + 1;
    let mut attempt = 0usize;
    let mut pause = Duration::from_millis(50);
    loop {
        let (url, options) = &members[(first + attempt) % members.len()];
        attempt += 1;
        let error = match watch_once(url, options, &prefix, &mut next, timeout, &tx).await {
            WatchEnd::ReceiverGone => return,
            WatchEnd::Compacted(oldest) => {
                let _ = tx.send(FeedEvent::Compacted { oldest }).await;
                return;
            }
            WatchEnd::Broken { error, delivered } => {
                if delivered {
                    pause = Duration::from_millis(50);
                }
                error
            }
        };
        if tx.send(FeedEvent::Disconnected(format!("{url}: {error}"))).await.is_err() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

enum WatchEnd {
    ReceiverGone,
    Compacted(u64),
    Broken { error: String, delivered: bool },
}

/// One watch stream on one member, from `next`; advances `next` past every revision delivered.
async fn watch_once(
    url: &str,
    options: &ConnectOptions,
    prefix: &str,
    next: &mut u64,
    timeout: Duration,
    tx: &tokio::sync::mpsc::Sender<FeedEvent>,
) -> WatchEnd {
    let broken = |error: String, delivered: bool| WatchEnd::Broken { error, delivered };
    let client = match tokio::time::timeout(timeout, Client::connect([url], Some(options.clone()))).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return broken(e.to_string(), false),
        Err(_) => return broken(format!("no connection within {timeout:?}"), false),
    };
    let Ok(start) = i64::try_from(*next) else { return broken("revision out of range".into(), false) };
    // Fragmented: a catch-up batch may hold a thousand revisions, far beyond gRPC's 4 MiB message limit; etcd then
    // splits it, and the pieces are joined again below so that a revision is never delivered in halves.
    let watch_options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_prev_key()
        .with_progress_notify()
        .with_fragment();
    let mut watch_client = client.watch_client();
    let mut stream = match tokio::time::timeout(
        timeout,
        watch_client.watch(prefix.as_bytes().to_vec(), Some(watch_options)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return broken(e.to_string(), false),
        Err(_) => return broken(format!("no watch within {timeout:?}"), false),
    };
    let mut delivered = false;
    // The events of the batch being received (several messages when etcd fragments it).
    let mut changes: Vec<Change> = Vec::new();
    // Ask for a progress notice now and then: it says the member is alive and how far the stream is.
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let mut heard = Instant::now();
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            _ = progress.tick() => {
                if heard.elapsed() > SILENCE {
                    return broken(format!("no progress notice within {SILENCE:?}"), delivered);
                }
                match tokio::time::timeout(SILENCE, stream.request_progress()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => return broken(e.to_string(), delivered),
                    Err(_) => return broken(format!("a progress request not taken within {SILENCE:?}"), delivered),
                }
            }
        };
        heard = Instant::now();
        let response = match message {
            Ok(Some(r)) => r,
            Ok(None) => return broken("the watch stream ended".into(), delivered),
            Err(e) => return broken(e.to_string(), delivered),
        };
        if response.compact_revision() > 0 {
            return WatchEnd::Compacted(u64::try_from(response.compact_revision()).unwrap_or(0));
        }
        if response.canceled() {
            return broken(format!("watch canceled: {}", response.cancel_reason()), delivered);
        }
        if response.created() && tx.send(FeedEvent::Connected).await.is_err() {
            return WatchEnd::ReceiverGone;
        }
        changes.extend(response.events().iter().filter_map(|event| change_of(event, prefix)));
        if response.0.fragment {
            // More pieces of this batch follow.
            continue;
        }
        if let Some(last) = changes.last() {
            *next = last.revision + 1;
            delivered = true;
            if tx.send(FeedEvent::Changes(std::mem::take(&mut changes))).await.is_err() {
                return WatchEnd::ReceiverGone;
            }
        } else if let Some(header) = response.header() {
            // A progress notice: everything up to the header's revision has been delivered.
            let revision = u64::try_from(header.revision()).unwrap_or(0);
            if !response.created() && tx.send(FeedEvent::Progress(revision)).await.is_err() {
                return WatchEnd::ReceiverGone;
            }
        }
    }
}

/// A watch event as a change of the store: the key without the prefix, the value (none for a delete).
fn change_of(event: &etcd_client::Event, prefix: &str) -> Option<Change> {
    let kv = event.kv()?;
    let revision = u64::try_from(kv.mod_revision()).ok()?;
    let key = std::str::from_utf8(kv.key()).ok()?.strip_prefix(prefix)?;
    let value = match event.event_type() {
        EventType::Put => Some(kv.value().to_vec()),
        EventType::Delete => None,
    };
    Some(Change { revision, key: key.to_string(), value })
}
