//! The command-line clients of the admin API: `vpcdns admin` (tenants) and `vpcdns operator` (the inventory).

pub mod admin;
pub mod client;
pub mod operator;

/// Writes command output to stdout. A reader that went away (`vpcdns … | head`) ends the command quietly, as with
/// any Unix tool, instead of the panic `print!` raises on a closed pipe.
pub fn emit(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        let code = if e.kind() == std::io::ErrorKind::BrokenPipe { 0 } else { 1 };
        std::process::exit(code);
    }
}

/// `print!` through [`emit`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::process::cli::emit(format_args!($($arg)*)) };
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::process::cli::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

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
pub(crate) fn query_string(params: &[(&str, Option<String>)]) -> String {
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
