//! The query log: one JSON line per query (time, VPC, account, source, name, type, rcode, zone, latency), for every
//! VPC or only those listed, written by a thread of its own.
//!
//! The query path never waits for the disk: it hands an entry to a bounded channel and, when the channel is full
//! (the disk is slow, or the file cannot be opened), drops the entry and counts it. The writer rotates the file
//! by size: `queries.jsonl` becomes `queries.jsonl.1`, which becomes `.2`, up to `keep` files.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::dataplane::respond::Exchange;
use crate::model::billing::Billed;
use crate::model::snapshot::Snapshot;
use crate::settings::QueryLogSettings;

/// One logged query.
#[derive(Debug, Serialize)]
struct Entry {
    time: String,
    vpc: Option<Arc<str>>,
    account: Option<Arc<str>>,
    source: IpAddr,
    /// The front end that relayed the query (PROXY v2), when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    front_end: Option<IpAddr>,
    /// The endpoint or VPC the front end's header named (`vpce-…`, `psc:…`, a VPC id).
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    name: String,
    #[serde(rename = "type")]
    qtype: String,
    rcode: &'static str,
    zone: Option<Arc<str>>,
    latency_us: u64,
}

/// The query path's handle on the log.
pub(crate) struct QueryLog {
    sender: SyncSender<Entry>,
    vpcs: Option<HashSet<String>>,
    dropped: AtomicU64,
}

impl QueryLog {
    /// Starts the writer thread. The file is opened by the writer, so a path that cannot be opened (or a FIFO
    /// nobody reads) never holds up the server: entries are dropped and counted, and the error is logged.
    pub(crate) fn start(settings: &QueryLogSettings) -> std::io::Result<Arc<QueryLog>> {
        let (sender, receiver) = mpsc::sync_channel(settings.queue.max(1));
        let writer = Writer {
            path: settings.path.clone(),
            max_bytes: settings.max_bytes.max(1),
            keep: settings.keep,
            file: None,
            written: 0,
        };
        std::thread::Builder::new().name("query-log".into()).spawn(move || writer.run(receiver))?;
        let vpcs = settings.vpcs.as_ref().map(|v| v.iter().cloned().collect());
        Ok(Arc::new(QueryLog { sender, vpcs, dropped: AtomicU64::new(0) }))
    }

    /// Entries dropped because the writer was behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Logs one finished exchange, answered under `snapshot`, if its VPC is logged and it had a question.
    pub(crate) fn record(&self, snapshot: &Snapshot, exchange: &Exchange) {
        let outcome = &exchange.outcome;
        let vpc = outcome.vpc.and_then(|v| snapshot.vpcs().get(v as usize));
        if let Some(wanted) = &self.vpcs {
            if !vpc.is_some_and(|v| wanted.contains(v.id.as_str())) {
                return;
            }
        }
        let Some(question) = outcome.question else { return };
        let Some(name) = question.name(exchange.packet) else { return };
        let zone = match outcome.billed {
            Billed::Zone(z) => snapshot.zones().get(z as usize).map(|z| z.meter_id().clone()),
            _ => None,
        };
        let entry = Entry {
            time: rfc3339_now(),
            vpc: vpc.map(|v| v.id.0.clone()),
            account: vpc.map(|v| v.account.clone()),
            source: exchange.source,
            front_end: exchange.front_end,
            identity: exchange.identity.map(|i| i.to_string()),
            name: crate::dns::name::wire_to_string(name),
            qtype: crate::dns::rdata::type_name(question.qtype).into_owned(),
            rcode: outcome.rcode.name(),
            zone,
            latency_us: exchange.latency.as_micros().try_into().unwrap_or(u64::MAX),
        };
        match self.sender.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread's side: the open file and how much of it is written.
struct Writer {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<BufWriter<File>>,
    written: u64,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Entry>) {
        let mut line = Vec::with_capacity(256);
        while let Ok(entry) = receiver.recv() {
            if let Err(e) = self.write(&entry, &mut line) {
                tracing::error!(path = %self.path.display(), error = %e, "query log write failed");
                self.file = None;
            }
            // Everything queued is written before the file is flushed: one flush per burst, not per line.
            while let Ok(entry) = receiver.try_recv() {
                if let Err(e) = self.write(&entry, &mut line) {
                    tracing::error!(path = %self.path.display(), error = %e, "query log write failed");
                    self.file = None;
                }
            }
            if let Some(file) = &mut self.file {
                if let Err(e) = file.flush() {
                    tracing::error!(path = %self.path.display(), error = %e, "query log flush failed");
                }
            }
        }
    }

    fn write(&mut self, entry: &Entry, line: &mut Vec<u8>) -> std::io::Result<()> {
        line.clear();
        serde_json::to_writer(&mut *line, entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.file.is_some() && self.written + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.written = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(BufWriter::new(file));
        }
        if let Some(file) = &mut self.file {
            file.write_all(line)?;
            self.written += line.len() as u64;
        }
        Ok(())
    }

    /// `path` → `path.1` → `path.2` … → `path.<keep>` (the oldest is replaced); the next write opens a new file.
    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-26T02:19:19.123Z`).
fn rfc3339_now() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// (year, month, day) of the day `days` after 1970-01-01, in the proleptic Gregorian calendar (H. Hinnant's
/// algorithm: eras of 400 years, years starting in March so that the leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_659_559, 123), "2026-11-26T02:19:19.123Z");
        assert_eq!(rfc3339(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn rotation_shifts_numbered_files_and_keeps_only_some() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("q.jsonl");
        let mut writer = Writer { path: path.clone(), max_bytes: 300, keep: 2, file: None, written: 0 };
        let mut line = Vec::new();
        for i in 0..40 {
            let entry = Entry {
                time: rfc3339(i, 0),
                vpc: None,
                account: None,
                source: IpAddr::from([127, 0, 0, 1]),
                front_end: None,
                identity: None,
                name: format!("n{i}.t."),
                qtype: "A".into(),
                rcode: "NOERROR",
                zone: None,
                latency_us: 1,
            };
            writer.write(&entry, &mut line).expect("write");
        }
        drop(writer);
        for file in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            let text = std::fs::read_to_string(&file).expect("log file");
            assert!(text.len() <= 300 && !text.is_empty(), "{}: {} bytes", file.display(), text.len());
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                assert_eq!(v["rcode"], "NOERROR");
            }
        }
        assert!(!numbered(&path, 3).exists(), "only two rotated files are kept");
        let newest = std::fs::read_to_string(&path).expect("log");
        assert!(newest.contains("\"n39.t.\""), "{newest}");
    }
}
