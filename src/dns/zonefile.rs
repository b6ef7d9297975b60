//! RFC 1035 §5 master-file ("zone file") parser over the tokenizer in [`crate::dns::text`]: the
//! `$ORIGIN`, `$TTL` and `$INCLUDE` directives, and records of class IN, in file order.
//!
//! This module only turns text into [`Record`]s. It must not judge zone semantics (records outside the zone, CNAME
//! beside other data, NS below the apex, duplicates…), which the caller validates; it must not read any file outside
//! the configuration directory through `$INCLUDE`; and it must never panic or loop forever, whatever the input.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::dns::name::Name;
pub use crate::dns::rdata::Record;
use crate::dns::rdata::{self, RData};
pub use crate::dns::text::Token;
use crate::dns::text::{Entry, Lexer};

/// How deep `$INCLUDE` may nest.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 16;
/// The largest TTL accepted (RFC 2181 §8).
pub(crate) const MAX_TTL: u32 = 0x7fff_ffff;

/// A parse failure: the file, the 1-based line where the offending record or directive starts (0 when the file
/// itself cannot be read), and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ZoneFileError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Reads and parses a zone file. Every `$INCLUDE` must resolve (after canonicalisation) inside `include_root`;
/// relative `$INCLUDE` paths are relative to `include_root`.
#[cfg(test)]
pub(crate) fn parse_zone_file(path: &Path, origin: &Name, include_root: &Path) -> Result<Vec<Record>, ZoneFileError> {
    read_zone_file(path, origin, include_root).map(|loaded| loaded.records)
}

/// A parsed zone file and every file it `$INCLUDE`d (so a watcher can reload when any of them changes).
pub(crate) struct LoadedZoneFile {
    pub records: Vec<Record>,
    pub included: Vec<PathBuf>,
}

/// As [`parse_zone_file`], also naming the included files.
pub(crate) fn read_zone_file(path: &Path, origin: &Name, include_root: &Path) -> Result<LoadedZoneFile, ZoneFileError> {
    let bytes = fs::read(path).map_err(|e| ZoneFileError {
        file: path.to_path_buf(),
        line: 0,
        message: format!("cannot read zone file: {e}"),
    })?;
    // An empty file is almost always one caught between truncation and write by an editor rewriting it in place;
    // loading it would serve an empty zone. A zone with nothing in it still needs a line ($TTL or a comment).
    if bytes.is_empty() {
        return Err(ZoneFileError { file: path.to_path_buf(), line: 0, message: "the zone file is empty".into() });
    }
    parse_bytes(&bytes, path, origin, Some(include_root))
}

/// Parses zone-file text; `file` only names it in errors.
#[cfg(test)]
pub(crate) fn parse_zone_str(
    text: &str,
    file: &Path,
    origin: &Name,
    include_root: &Path,
) -> Result<Vec<Record>, ZoneFileError> {
    parse_bytes(text.as_bytes(), file, origin, Some(include_root)).map(|loaded| loaded.records)
}

/// Parses zone-file text that may not read any file: every `$INCLUDE` directive — wherever the parser finds one,
/// not only at the start of a line of text — is an error. For tenant imports.
pub fn parse_untrusted_zone(text: &str, file: &Path, origin: &Name) -> Result<Vec<Record>, ZoneFileError> {
    parse_bytes(text.as_bytes(), file, origin, None).map(|loaded| loaded.records)
}

fn parse_bytes(
    bytes: &[u8],
    file: &Path,
    origin: &Name,
    include_root: Option<&Path>,
) -> Result<LoadedZoneFile, ZoneFileError> {
    let mut parser = Parser { include_root, ttl: TtlState::default(), records: Vec::new(), included: Vec::new() };
    let ctx = FileCtx { file: file.to_path_buf(), origin: origin.clone(), last_owner: None, depth: 0 };
    parser.parse_file(bytes, ctx)?;
    Ok(LoadedZoneFile { records: parser.records, included: parser.included })
}

// ---------------------------------------------------------------------------------------------------------------
// Parser.

/// TTL defaults, shared by a file and everything it includes.
#[derive(Default)]
struct TtlState {
    /// `$TTL`.
    default: Option<u32>,
    /// The last explicit TTL (RFC 1035 §5.1).
    last: Option<u32>,
    /// The minimum field of the last SOA read.
    soa_minimum: Option<u32>,
}

impl TtlState {
    /// Explicit TTL, else `$TTL`, else the last explicit TTL, else an SOA's minimum (an SOA without a TTL uses its
    /// own, as BIND does).
    fn resolve(&mut self, explicit: Option<u32>, rdata: &RData) -> Result<u32, String> {
        let own_minimum = match rdata {
            RData::Soa(soa) => Some(soa.minimum),
            _ => None,
        };
        let ttl = match explicit {
            Some(ttl) => {
                self.last = Some(ttl);
                ttl
            }
            None => self.default.or(self.last).or(self.soa_minimum).or(own_minimum).ok_or("no TTL specified")?,
        };
        if own_minimum.is_some() {
            self.soa_minimum = own_minimum;
        }
        if ttl > MAX_TTL {
            return Err(format!("TTL {ttl} (from the SOA minimum) is above the maximum {MAX_TTL}"));
        }
        Ok(ttl)
    }
}

/// Per-file state: `$ORIGIN` and the previous owner do not leak out of an included file.
struct FileCtx {
    file: PathBuf,
    origin: Name,
    last_owner: Option<Name>,
    depth: usize,
}

impl FileCtx {
    fn error(&self, line: usize, message: String) -> ZoneFileError {
        ZoneFileError { file: self.file.clone(), line, message }
    }
}

/// The fields before the RDATA.
struct Header<'t> {
    ttl: Option<u32>,
    rtype: u16,
    rdata: &'t [Token],
}

struct Parser<'r> {
    /// Where `$INCLUDE` may read from; `None`: nowhere (the directive is refused).
    include_root: Option<&'r Path>,
    ttl: TtlState,
    records: Vec<Record>,
    included: Vec<PathBuf>,
}

impl Parser<'_> {
    fn parse_file(&mut self, bytes: &[u8], mut ctx: FileCtx) -> Result<(), ZoneFileError> {
        let mut lexer = Lexer::new(bytes);
        while let Some(entry) = lexer.next_entry().map_err(|(line, message)| ctx.error(line, message))? {
            self.entry(&mut ctx, &entry)?;
        }
        Ok(())
    }

    fn entry(&mut self, ctx: &mut FileCtx, entry: &Entry) -> Result<(), ZoneFileError> {
        let args = entry.tokens.get(1..).unwrap_or_default();
        match directive(entry) {
            Some(d) if d.eq_ignore_ascii_case("$INCLUDE") => self.include(ctx, entry.line, args),
            Some(d) => self.directive(ctx, d, args).map_err(|m| ctx.error(entry.line, m)),
            None => self.record(ctx, entry).map_err(|m| ctx.error(entry.line, m)),
        }
    }

    fn directive(&mut self, ctx: &mut FileCtx, name: &str, args: &[Token]) -> Result<(), String> {
        if name.eq_ignore_ascii_case("$ORIGIN") {
            let [arg] = args else { return Err("$ORIGIN needs exactly one domain name".into()) };
            ctx.origin = name_token(arg, &ctx.origin)?;
        } else if name.eq_ignore_ascii_case("$TTL") {
            let [arg] = args else { return Err("$TTL needs exactly one TTL value".into()) };
            self.ttl.default = Some(ttl_token(arg)?);
        } else {
            return Err(format!("unknown directive {name:?}"));
        }
        Ok(())
    }

    fn record(&mut self, ctx: &mut FileCtx, entry: &Entry) -> Result<(), String> {
        let (owner, rest) = owner(ctx, entry)?;
        let header = header(rest)?;
        let type_name = rdata::type_name(header.rtype);
        let rdata =
            RData::parse(header.rtype, header.rdata, &ctx.origin).map_err(|e| format!("{type_name} record: {e}"))?;
        let ttl = self.ttl.resolve(header.ttl, &rdata)?;
        ctx.last_owner = Some(owner.clone());
        self.records.push(Record { owner, ttl, rdata });
        Ok(())
    }

    fn include(&mut self, ctx: &FileCtx, line: usize, args: &[Token]) -> Result<(), ZoneFileError> {
        let fail = |message: String| ctx.error(line, message);
        let Some(include_root) = self.include_root else {
            return Err(fail("$INCLUDE is not allowed here: this zone text may not read files".into()));
        };
        let (file, origin) = include_args(ctx, args).map_err(fail)?;
        if ctx.depth >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!("$INCLUDE {file:?} nests deeper than {MAX_INCLUDE_DEPTH} levels")));
        }
        let (shown, real) = resolve_include(include_root, &file).map_err(fail)?;
        let bytes = fs::read(&real).map_err(|e| fail(format!("cannot read $INCLUDE file {}: {e}", shown.display())))?;
        self.included.push(real);
        let child = FileCtx { file: shown, origin, last_owner: None, depth: ctx.depth + 1 };
        self.parse_file(&bytes, child)
    }
}

/// The directive name when the entry starts, in the first column, with an unquoted `$` token.
fn directive(entry: &Entry) -> Option<&str> {
    let first = entry.tokens.first()?;
    (!entry.blank_owner && !first.quoted && first.text.starts_with('$')).then_some(first.text.as_str())
}

fn owner<'e>(ctx: &FileCtx, entry: &'e Entry) -> Result<(Name, &'e [Token]), String> {
    if entry.blank_owner {
        let owner = ctx.last_owner.clone().ok_or("the line starts with blank space but there is no previous owner")?;
        return Ok((owner, &entry.tokens));
    }
    let (first, rest) = entry.tokens.split_first().ok_or("empty record")?;
    Ok((name_token(first, &ctx.origin)?, rest))
}

/// `[TTL] [class] type` or `[class] [TTL] type`.
fn header(tokens: &[Token]) -> Result<Header<'_>, String> {
    let mut ttl = None;
    let mut class_seen = false;
    let mut rest = tokens;
    loop {
        let (token, after) = rest.split_first().ok_or("missing record type")?;
        if token.quoted {
            return Err(format!("unexpected quoted string {:?} where a TTL, class or type belongs", token.text));
        }
        if token.text.starts_with(|c: char| c.is_ascii_digit()) {
            if ttl.is_some() {
                return Err(format!("second TTL {:?}", token.text));
            }
            ttl = Some(ttl_token(token)?);
        } else if is_class(&token.text) {
            if class_seen {
                return Err(format!("second class {:?}", token.text));
            }
            check_class(&token.text)?;
            class_seen = true;
        } else {
            let rtype = rdata::type_from_mnemonic(&token.text)
                .ok_or_else(|| format!("unknown record type {:?}", token.text))?;
            return Ok(Header { ttl, rtype, rdata: after });
        }
        rest = after;
    }
}

const CLASS_NAMES: &[&str] = &["IN", "CH", "CHAOS", "HS", "HESIOD", "CS", "NONE", "ANY"];

fn is_class(text: &str) -> bool {
    CLASS_NAMES.iter().any(|c| c.eq_ignore_ascii_case(text)) || class_number(text).is_some()
}

/// `CLASSnnn` (RFC 3597 §5).
fn class_number(text: &str) -> Option<u16> {
    let prefix = text.get(..5)?;
    let digits = text.get(5..)?;
    let valid = prefix.eq_ignore_ascii_case("CLASS") && (1..=5).contains(&digits.len());
    if !valid || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn check_class(text: &str) -> Result<(), String> {
    if text.eq_ignore_ascii_case("IN") || class_number(text) == Some(1) {
        Ok(())
    } else {
        Err(format!("class {text:?} is not supported: only IN"))
    }
}

fn ttl_token(token: &Token) -> Result<u32, String> {
    let ttl =
        rdata::parse_ttl(&token.text).filter(|_| !token.quoted).ok_or_else(|| format!("bad TTL {:?}", token.text))?;
    if ttl > MAX_TTL {
        return Err(format!("TTL {:?} is above the maximum {MAX_TTL}", token.text));
    }
    Ok(ttl)
}

fn name_token(token: &Token, origin: &Name) -> Result<Name, String> {
    if token.quoted {
        return Err(format!("unexpected quoted string {:?} where a domain name belongs", token.text));
    }
    Name::from_text(&token.text, Some(origin)).map_err(|e| format!("bad domain name: {e}"))
}

/// `$INCLUDE <file> [origin]`: the file name (quoted or not, escapes decoded) and the origin for the included file.
fn include_args(ctx: &FileCtx, args: &[Token]) -> Result<(String, Name), String> {
    let (file, origin) = match args {
        [file] => (file, ctx.origin.clone()),
        [file, origin] => (file, name_token(origin, &ctx.origin)?),
        _ => return Err("$INCLUDE needs a file name and an optional origin".into()),
    };
    let bytes = rdata::unescape(&file.text).ok_or_else(|| format!("bad escape in $INCLUDE file {:?}", file.text))?;
    let path = String::from_utf8(bytes).map_err(|_| format!("$INCLUDE file name {:?} is not UTF-8", file.text))?;
    Ok((path, origin))
}

/// The path to show and the canonical path to read, refusing anything outside `root`: first lexically (so that
/// files outside cannot be probed for existence), then after resolving symbolic links.
fn resolve_include(root: &Path, file: &str) -> Result<(PathBuf, PathBuf), String> {
    let shown = root.join(file);
    let leaves = || format!("$INCLUDE {file:?} leaves the configuration directory {}", root.display());
    match (normalize(&shown), normalize(root)) {
        (Some(path), Some(base)) if path.starts_with(&base) => {}
        _ => return Err(leaves()),
    }
    let real = shown.canonicalize().map_err(|e| format!("cannot open $INCLUDE file {}: {e}", shown.display()))?;
    let base = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the configuration directory {}: {e}", root.display()))?;
    if !real.starts_with(&base) {
        return Err(leaves());
    }
    Ok((shown, real))
}

/// An absolute form of `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::rdata::rtype;
    use std::net::Ipv4Addr;

    fn n(text: &str) -> Name {
        Name::from_text(text, None).expect("valid test name")
    }

    fn origin() -> Name {
        n("corp.internal.")
    }

    fn parse(text: &str) -> Result<Vec<Record>, ZoneFileError> {
        parse_zone_str(text, Path::new("test.zone"), &origin(), Path::new("/nonexistent-include-root"))
    }

    fn ok(text: &str) -> Vec<Record> {
        match parse(text) {
            Ok(records) => records,
            Err(e) => panic!("zone should parse: {e}"),
        }
    }

    fn err(text: &str) -> ZoneFileError {
        match parse(text) {
            Ok(records) => panic!("zone should fail, got {records:?}"),
            Err(e) => e,
        }
    }

    fn rd(t: u16, text: &str) -> RData {
        RData::from_text(t, text, &origin()).expect("valid test rdata")
    }

    fn rec(owner: &str, ttl: u32, rdata: RData) -> Record {
        Record { owner: Name::from_text(owner, Some(&origin())).expect("valid owner"), ttl, rdata }
    }

    const ZONE: &str = r#"
$TTL 1h
@   IN  SOA ns1 hostmaster (
            2024010101 ; serial
            3h         ; refresh
            15m 1w 1d )
    IN  NS  ns1
    IN  NS  ns2.example.
    IN  MX  10 @
ns1     300 IN A 10.0.0.53
WWW     IN 300 AAAA 2001:db8::1
alias   CNAME www
4.3.2.1.in-addr   PTR ns1
sub     DNAME other.example.
_sip._tcp SRV 0 5 5060 sip
txt     TXT "v=spf1 ip4:10.0.0.0/8" "-all" bare
        TXT "quote \" and \\ and \065\066;(not a comment)"
host    HINFO "Intel Xeon" Linux
@       CAA 0 issue "ca.example"
opaque  TYPE65534 \# 3 abcdef
generic A \# 4 0a000001
sshfp   SSHFP \# 2 0102
"#;

    #[test]
    fn parses_every_type_in_file_order() {
        let records = ok(ZONE);
        let expected = vec![
            rec("@", 3600, rd(rtype::SOA, "ns1 hostmaster 2024010101 10800 900 604800 86400")),
            rec("@", 3600, RData::Ns(n("ns1.corp.internal."))),
            rec("@", 3600, RData::Ns(n("ns2.example."))),
            rec("@", 3600, RData::Mx { preference: 10, exchange: origin() }),
            rec("ns1", 300, RData::A(Ipv4Addr::new(10, 0, 0, 53))),
            rec("WWW", 300, rd(rtype::AAAA, "2001:db8::1")),
            rec("alias", 3600, RData::Cname(n("www.corp.internal."))),
            rec("4.3.2.1.in-addr", 3600, RData::Ptr(n("ns1.corp.internal."))),
            rec("sub", 3600, RData::Dname(n("other.example."))),
            rec("_sip._tcp", 3600, rd(rtype::SRV, "0 5 5060 sip.corp.internal.")),
            rec(
                "txt",
                3600,
                RData::Txt(vec![b"v=spf1 ip4:10.0.0.0/8"[..].into(), b"-all"[..].into(), b"bare"[..].into()]),
            ),
            rec("txt", 3600, RData::Txt(vec![b"quote \" and \\ and AB;(not a comment)"[..].into()])),
            rec(
                "host",
                3600,
                RData::Hinfo(Box::new(crate::dns::rdata::Hinfo {
                    cpu: b"Intel Xeon"[..].into(),
                    os: b"Linux"[..].into(),
                })),
            ),
            rec(
                "@",
                3600,
                RData::Caa(Box::new(crate::dns::rdata::Caa {
                    flags: 0,
                    tag: b"issue"[..].into(),
                    value: b"ca.example"[..].into(),
                })),
            ),
            rec("opaque", 3600, RData::Unknown { rtype: 65534, data: vec![0xab, 0xcd, 0xef].into() }),
            rec("generic", 3600, RData::A(Ipv4Addr::new(10, 0, 0, 1))),
            rec("sshfp", 3600, RData::Unknown { rtype: 44, data: vec![1, 2].into() }),
        ];
        assert_eq!(records, expected);
        // Owner case is kept as written.
        assert_eq!(records[5].owner.to_string(), "WWW.corp.internal.");
    }

    #[test]
    fn origin_directive_and_relative_names() {
        let records = ok("$TTL 60\n$ORIGIN sub\na A 10.0.0.1\n$ORIGIN other.example.\nb CNAME a\n  MX 5 @\n");
        assert_eq!(records[0].owner, n("a.sub.corp.internal."));
        assert_eq!(records[1].owner, n("b.other.example."));
        assert_eq!(records[1].rdata, RData::Cname(n("a.other.example.")));
        assert_eq!(records[2].owner, n("b.other.example."));
        assert_eq!(records[2].rdata, RData::Mx { preference: 5, exchange: n("other.example.") });
        let escaped = ok("$TTL 60\na\\.b\\032c A 10.0.0.1\n");
        assert_eq!(escaped[0].owner.wire(), b"\x05a.b c\x04corp\x08internal\x00");
    }

    #[test]
    fn ttl_resolution() {
        // Explicit TTL becomes the default for later records when there is no $TTL (RFC 1035).
        let records = ok("a 100 A 10.0.0.1\nb A 10.0.0.2\n$TTL 2m\nc A 10.0.0.3\nd 7 A 10.0.0.4\ne A 10.0.0.5\n");
        let ttls: Vec<u32> = records.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [100, 100, 120, 7, 120]);
        // An SOA without a TTL uses its own minimum, and so do later records.
        let records = ok("@ SOA ns hm 1 2 3 4 55\na A 10.0.0.1\n");
        assert_eq!(records.iter().map(|r| r.ttl).collect::<Vec<_>>(), [55, 55]);
        let e = err("a A 10.0.0.1\n");
        assert_eq!((e.line, e.message.as_str()), (1, "no TTL specified"));
        assert!(err("a 2147483648 A 10.0.0.1").message.contains("above the maximum"));
        assert_eq!(ok("a 2147483647 A 10.0.0.1")[0].ttl, MAX_TTL);
        assert!(err("$TTL 4294967295\n").message.contains("above the maximum"));
        assert!(err("@ SOA ns hm 1 2 3 4 4294967295\n").message.contains("above the maximum"));
        assert!(err("$TTL 1x\n").message.contains("\"1x\""));
    }

    #[test]
    fn ttl_and_class_in_either_order() {
        let records = ok("a 60 IN A 10.0.0.1\nb IN 60 A 10.0.0.1\nc CLASS1 60 A 10.0.0.1\nd in 1m a 10.0.0.1\n");
        assert!(records.iter().all(|r| r.ttl == 60));
        assert_eq!(err("$TTL 1\na CH A 10.0.0.1").message, "class \"CH\" is not supported: only IN");
        assert!(err("$TTL 1\na IN IN A 10.0.0.1").message.contains("second class"));
        assert!(err("$TTL 1\na 1 2 A 10.0.0.1").message.contains("second TTL"));
        assert!(err("$TTL 1\na CLASS3 A 10.0.0.1").message.contains("CLASS3"));
        assert_eq!(err("$TTL 1\na FOO 10.0.0.1").message, "unknown record type \"FOO\"");
        assert_eq!(err("$TTL 1\na IN").message, "missing record type");
    }

    #[test]
    fn errors_carry_the_starting_line() {
        let e = err("$TTL 1h\n\n; comment\nwww A 10.0.0\n");
        assert_eq!(e.line, 4);
        assert_eq!(e.to_string(), "test.zone:4: A record: bad IPv4 address \"10.0.0\"");
        let e = err("$TTL 1h\n@ SOA ns hm (\n 1 2 3 4\n x )\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("\"x\""), "{e}");
        assert_eq!(err("$TTL 1h\na TXT \"open\nb A 10.0.0.1\n").line, 2);
        assert_eq!(err("$TTL 1h\na TXT ( \"x\"\n\n").line, 2);
        assert_eq!(err("$TTL 1h\na A 10.0.0.1 )\n").line, 2);
        assert_eq!(err("$TTL 1h\n\n$GENERATE 1-5 x A 10.0.0.$").message, "unknown directive \"$GENERATE\"");
        assert_eq!(err("  A 10.0.0.1").line, 1);
        assert_eq!(err("$TTL 1\na MX 10").message, "MX record: MX needs a preference and an exchange");
        assert!(err("$TTL 1\na SSHFP 1 1 abcd").message.contains("TYPE44 \\#"));
        assert!(err("$TTL 1\n\"a\" A 10.0.0.1").message.contains("quoted"));
        assert!(err("$ORIGIN\n").message.contains("$ORIGIN"));
        assert_eq!(err("$TTL 1\na A 10.0.0.1 ; ok\nb.. A 10.0.0.1").line, 3);
    }

    #[test]
    fn whitespace_and_comment_lines() {
        let records = ok(
            "; only a comment\n   \n\t; indented comment\n$ttl 5\r\na A 10.0.0.1 ; trailing\r\n( b\n A\n 10.0.0.2 )\n",
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].owner, n("b.corp.internal."));
        assert!(ok("").is_empty());
        let records = ok("$ttl 5\r\nc\tTYPE1\t10.0.0.3\r\n\r\n  type16 \"x\"\r\n");
        assert_eq!(records[0].rdata, RData::A(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(records[1], rec("c", 5, RData::Txt(vec![b"x"[..].into()])));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).expect("write test file");
        path
    }

    #[test]
    fn include_inside_the_root() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::create_dir(root.path().join("inc")).expect("mkdir");
        write(root.path(), "inc/hosts.zone", "host A 10.0.0.7\n$ORIGIN deeper\nx A 10.0.0.8\n");
        let main = "$TTL 60\ntop A 10.0.0.1\n$INCLUDE inc/hosts.zone sub\n  A 10.0.0.9\nafter A 10.0.0.10\n";
        let main = write(root.path(), "main.zone", main);
        let records = parse_zone_file(&main, &origin(), root.path()).map_err(|e| e.to_string());
        let owners: Vec<String> = records.iter().flatten().map(|r| r.owner.to_string()).collect();
        let expected = [
            "top.corp.internal.",
            "host.sub.corp.internal.",
            "x.deeper.sub.corp.internal.",
            "top.corp.internal.",
            "after.corp.internal.",
        ];
        assert_eq!(owners, expected);
        assert!(records.as_ref().is_ok_and(|r| r.iter().all(|r| r.ttl == 60)));
        let absolute = root.path().join("inc/hosts.zone");
        let text = format!("$TTL 1\n$INCLUDE \"{}\"\n", absolute.display());
        assert_eq!(parse_zone_str(&text, Path::new("z"), &origin(), root.path()).map(|r| r.len()).ok(), Some(2));
    }

    #[test]
    fn include_outside_the_root_or_too_deep() {
        let outer = tempfile::tempdir().expect("temp dir");
        let root = outer.path().join("config");
        fs::create_dir(&root).expect("mkdir");
        write(outer.path(), "secret.zone", "s A 10.0.0.1\n");
        let parse = |text: &str| parse_zone_str(text, Path::new("main.zone"), &origin(), &root);
        for text in ["$INCLUDE ../secret.zone", "$INCLUDE ../missing.zone", "$INCLUDE /etc/passwd"] {
            let e = parse(text).err().map(|e| e.message).unwrap_or_default();
            assert!(e.contains("leaves the configuration directory"), "{text}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("secret.zone"), root.join("link.zone")).expect("symlink");
            let e = parse("$INCLUDE link.zone").err().map(|e| e.message).unwrap_or_default();
            assert!(e.contains("leaves the configuration directory"), "{e}");
        }
        assert!(parse("$INCLUDE missing.zone").is_err_and(|e| e.message.contains("cannot open")));
        assert!(parse("$INCLUDE").is_err_and(|e| e.line == 1));
        write(&root, "loop.zone", "$INCLUDE loop.zone\n");
        let e = parse("\n$INCLUDE loop.zone").err();
        assert!(e.as_ref().is_some_and(|e| e.message.contains("deeper than 16")), "{e:?}");
        let e = parse_zone_file(&root.join("absent.zone"), &origin(), &root).err();
        assert!(e.is_some_and(|e| e.line == 0 && e.message.contains("cannot read")));
    }

    #[test]
    fn errors_in_included_files_name_that_file() {
        let root = tempfile::tempdir().expect("temp dir");
        write(root.path(), "bad.zone", "$TTL 1\nok A 10.0.0.1\nbad A 300.0.0.1\n");
        let e = parse_zone_str("\n\n$INCLUDE bad.zone\n", Path::new("main.zone"), &origin(), root.path()).err();
        let e = e.map(|e| (e.file.ends_with("bad.zone"), e.line));
        assert_eq!(e, Some((true, 3)));
    }

    #[test]
    fn garbage_never_panics_or_hangs() {
        let alphabet = b"ab.@$();\"\\ \t\n\r0123456789INASOATXTMX#\xc3\xa9\x00-*";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..600 {
            let len = (next() % 120) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 2 == 0 {
                        (r >> 16) as u8
                    } else {
                        alphabet[(r >> 16) as usize % alphabet.len()]
                    }
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
            let _ = parse(&format!("$TTL 1\n{text}"));
            for t in [rtype::A, rtype::SOA, rtype::TXT, rtype::CAA, rtype::SRV, 65534] {
                let _ = RData::from_text(t, &text, &origin());
            }
        }
    }
}
