//! Verification codes by e-mail through a real SMTP conversation, and no header injection through user text.
//!
//! A minimal SMTP sink in the test (std `TcpListener` on 127.0.0.1, bounded in messages and time) receives what the
//! server's `[notify.smtp]` mailer sends. acme asks to link beta; the sink gets one message whose envelope and `To:`
//! name beta's email and whose body holds the code; that code, read from the e-mail alone, verifies the request and
//! the link is listed. Then account names that would carry a header (`"evil\r\nBcc: …"`, in the name or the email)
//! are refused by the operator, and a message naming an account with the longest valid username has exactly one
//! `From:`, `To:` and `Subject:` and no header line the test does not expect.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::store::StoreServer;
use serde_json::Value;

const SUBJECT: &str = "vpcdns: verification code for a link request";
const FROM: &str = "vpcdns@ops.example";
/// Lines one SMTP session may send before the sink hangs up (a message is a few dozen).
const MAX_LINES: usize = 2000;

/// One message as the sink received it: the envelope and the raw data (dot-unstuffed, CRLF line ends).
#[derive(Debug, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// Starts a sink that takes up to `max` messages, over any number of connections, for at most `within`; each
/// message goes to the channel as soon as its data is complete (before the 250 that lets the sender go on).
fn smtp_sink(max: usize, within: Duration) -> (u16, mpsc::Receiver<Mail>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
    let port = listener.local_addr().expect("sink address").port();
    listener.set_nonblocking(true).expect("non-blocking accept");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + within;
        let mut received = 0;
        while received < max && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => received += session(stream, &tx, deadline),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return,
            }
        }
    });
    (port, rx)
}

/// One SMTP session; returns how many messages it delivered to the channel.
fn session(stream: TcpStream, tx: &mpsc::Sender<Mail>, deadline: Instant) -> usize {
    let (Ok(()), Ok(()), Ok(read)) =
        (stream.set_nonblocking(false), stream.set_read_timeout(Some(Duration::from_secs(5))), stream.try_clone())
    else {
        return 0;
    };
    let mut reader = BufReader::new(read);
    let mut out = stream;
    let mut line = || {
        let mut text = String::new();
        match reader.read_line(&mut text) {
            Ok(n) if n > 0 && Instant::now() < deadline => Some(text.trim_end_matches(['\r', '\n']).to_string()),
            _ => None,
        }
    };
    let mut delivered = 0;
    let mut mail = Mail::default();
    let mut reply = |text: &str| out.write_all(text.as_bytes()).is_ok();
    if !reply("220 sink.localhost ESMTP test sink\r\n") {
        return 0;
    }
    for _ in 0..MAX_LINES {
        let Some(command) = line() else { break };
        let answer = match command.get(..4).map(str::to_ascii_uppercase).as_deref() {
            Some("EHLO") => "250-sink.localhost\r\n250 8BITMIME\r\n",
            Some("HELO") => "250 sink.localhost\r\n",
            Some("MAIL") => {
                mail = Mail { from: angle(&command), ..Mail::default() };
                "250 OK\r\n"
            }
            Some("RCPT") => {
                mail.to.push(angle(&command));
                "250 OK\r\n"
            }
            Some("DATA") => {
                if !reply("354 end data with <CR><LF>.<CR><LF>\r\n") {
                    break;
                }
                let mut complete = false;
                for _ in 0..MAX_LINES {
                    let Some(data) = line() else { break };
                    if data == "." {
                        complete = true;
                        break;
                    }
                    mail.data.push_str(data.strip_prefix('.').unwrap_or(&data));
                    mail.data.push_str("\r\n");
                }
                if !complete {
                    break;
                }
                let _ = tx.send(std::mem::take(&mut mail));
                delivered += 1;
                "250 OK queued\r\n"
            }
            Some("RSET") => {
                mail = Mail::default();
                "250 OK\r\n"
            }
            Some("NOOP") => "250 OK\r\n",
            Some("QUIT") => {
                let _ = reply("221 bye\r\n");
                break;
            }
            _ => "502 not implemented\r\n",
        };
        if !reply(answer) {
            break;
        }
    }
    delivered
}

/// The address between `<` and `>` of `MAIL FROM:<a> …` / `RCPT TO:<a>`.
fn angle(command: &str) -> String {
    command.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a.to_string()).unwrap_or_default()
}

/// A received message taken apart: header fields in order (folded lines joined) and the decoded body.
struct Parsed {
    headers: Vec<(String, String)>,
    body: String,
}

impl Parsed {
    fn of(mail: &Mail) -> Parsed {
        let (head, raw_body) = mail.data.split_once("\r\n\r\n").expect("a blank line after the headers");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a continuation line follows a header");
                last.1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("not a header line: {line:?}"));
                headers.push((name.to_string(), value.trim().to_string()));
            }
        }
        let mut parsed = Parsed { headers, body: String::new() };
        parsed.body = match parsed.all("Content-Transfer-Encoding").as_slice() {
            [] | ["7bit"] => raw_body.to_string(),
            ["quoted-printable"] => quoted_printable(raw_body),
            other => panic!("unexpected transfer encoding {other:?}"),
        };
        parsed
    }

    /// The values of every header field named `name`.
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The value after `label` in the body, up to the end of its line.
    fn field(&self, label: &str) -> String {
        let rest = self.body.split(label).nth(1).unwrap_or_else(|| panic!("no {label:?} in:\n{}", self.body));
        rest.lines().next().unwrap_or_default().trim().to_string()
    }
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let mut out = Vec::new();
    let mut rest = joined.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'=', Some(v)) => {
                out.push(v);
                rest = &tail[2..];
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(out).expect("utf-8 body")
}

/// A server in store mode with `[notify.smtp]` at the sink.
fn start(smtp_port: u16) -> StoreServer {
    let notify = format!("[notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nfrom = \"{FROM}\"\n");
    StoreServer::start_with("", &notify, &[])
}

fn account(s: &StoreServer, uid: &str, name: &str, email: &str) -> Result<Value, String> {
    s.operator(&["accounts", "put", "--uid", uid, "--name", name, "--email", email, "--site", "intl"])
}

/// The next message the sink received (bounded wait), with the server log if none came.
fn next_mail(s: &StoreServer, rx: &mpsc::Receiver<Mail>) -> Mail {
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no mail; server log:\n{}", s.log()))
}

/// The header fields a verification mail may have; anything else is a header the test did not expect.
const EXPECTED_HEADERS: &[&str] =
    &["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"];

/// Exactly one From, To and Subject, the expected values, and no other header field than [`EXPECTED_HEADERS`].
fn assert_headers(mail: &Parsed, to: &str) {
    for (name, _) in &mail.headers {
        assert!(EXPECTED_HEADERS.iter().any(|e| e.eq_ignore_ascii_case(name)), "unexpected header {name:?}");
    }
    assert_eq!(mail.all("Subject"), [SUBJECT]);
    assert_eq!(mail.all("From"), [FROM]);
    let recipients = mail.all("To");
    assert_eq!(recipients.len(), 1, "{recipients:?}");
    assert!(recipients[0] == to || recipients[0].ends_with(&format!("<{to}>")), "To: {}", recipients[0]);
    assert!(mail.all("Bcc").is_empty() && mail.all("Cc").is_empty());
}

#[test]
fn the_code_arrives_by_smtp_and_user_text_cannot_inject_headers() {
    let (port, rx) = smtp_sink(2, Duration::from_secs(60));
    let s = start(port);
    account(&s, "1001", "acme", "root@acme.example").expect("acme");
    account(&s, "1002", "beta", "root@beta.example").expect("beta");
    s.operator(&["vpcs", "put", "--id", "vpc-acme", "--account", "1001", "--cidr", "127.0.80.0/24"]).expect("vpc");
    s.operator(&["vpcs", "put", "--id", "vpc-beta", "--account", "1002", "--cidr", "127.0.81.0/24"]).expect("vpc");
    let acme = s.operator(&["key", "acme"]).expect("key")["token"].as_str().expect("token").to_string();

    // acme asks to link beta: the mail goes to beta's email, and its code alone completes the link.
    let request = s.admin(&acme, &["links", "request", "beta"]).expect("request");
    let request_id = request["request"].as_str().expect("request id");
    let mail = next_mail(&s, &rx);
    assert_eq!(mail.from, FROM);
    assert_eq!(mail.to, ["root@beta.example"]);
    let parsed = Parsed::of(&mail);
    assert_headers(&parsed, "root@beta.example");
    assert_eq!(parsed.field("Request: "), request_id);
    let code = parsed.field("Verification code: ");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "code {code:?}");
    let verified = s.admin(&acme, &["links", "verify", request_id, &code]).expect("the mailed code verifies");
    assert_eq!(verified["linked"], "1002");
    let links = s.admin(&acme, &["links", "list"]).expect("links");
    let linked: Vec<&Value> = links["linked"].as_array().expect("linked").iter().map(|l| &l["uid"]).collect();
    assert_eq!(linked, ["1002"]);

    // A header in a name or an email is refused, and nothing is created.
    let evil = account(&s, "1003", "evil\r\nBcc: x@y.example", "root@evil.example").expect_err("a name with CRLF");
    assert!(evil.contains("must match"), "{evil}");
    let evil = account(&s, "1003", "evil", "root@evil.example\r\nBcc: x@y.example").expect_err("an email with CRLF");
    assert!(evil.contains("not an email address"), "{evil}");
    let accounts = s.operator(&["accounts", "list"]).expect("accounts");
    assert!(accounts["accounts"].as_array().expect("accounts").iter().all(|a| a["uid"] != "1003"), "{accounts}");

    // The longest valid username (64 of [a-z][a-z0-9._-]; 65 is refused) in a message: still exactly the headers
    // expected, and the name only in the body.
    let long: String = std::iter::once('l').chain("o0.-_".chars().cycle()).take(64).collect();
    let too_long = format!("{long}x");
    assert!(account(&s, "1005", &too_long, "root@long.example").is_err(), "65 characters are refused");
    account(&s, "1005", &long, "root@long.example").expect("64 characters are a valid username");
    s.operator(&["vpcs", "put", "--id", "vpc-long", "--account", "1005", "--cidr", "127.0.83.0/24"]).expect("vpc");
    s.admin(&acme, &["links", "request", &long]).expect("request to the long name");
    let mail = next_mail(&s, &rx);
    assert_eq!(mail.to, ["root@long.example"]);
    let parsed = Parsed::of(&mail);
    assert_headers(&parsed, "root@long.example");
    assert!(parsed.body.contains(&format!("link your account {long},")), "{}", parsed.body);
    assert!(!parsed.headers.iter().any(|(_, v)| v.contains(&long)), "{:?}", parsed.headers);
    assert_eq!(parsed.field("Verification code: ").len(), 6);
}
