//! The command-line clients of the admin API: `vpcdns admin` (tenants) and `vpcdns operator` (the inventory).

pub mod admin;
pub mod client;
pub mod operator;

/// Percent-encodes one path segment (zone ids hold `/`).
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the parameters that are set.
pub fn query_string(params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A time range in Unix seconds (default: the last hour), and an optional count limit.
#[derive(clap::Args)]
pub struct Range {
    /// Unix seconds.
    #[arg(long)]
    pub from: Option<u64>,
    /// Unix seconds.
    #[arg(long)]
    pub to: Option<u64>,
    /// At most this many entries (audit).
    #[arg(long)]
    pub limit: Option<usize>,
}

impl Range {
    /// `path?from=…&to=…&limit=…` with the parameters that are set.
    pub fn url(&self, path: &str) -> String {
        let s = |v: Option<u64>| v.map(|v| v.to_string());
        format!(
            "{path}{}",
            query_string(&[("from", s(self.from)), ("to", s(self.to)), ("limit", self.limit.map(|v| v.to_string()))])
        )
    }
}
