//! Parsing, printing and wire round trips of every record type, and hostile input.

use super::text::usage;
use super::*;

fn origin() -> Name {
    Name::from_text("corp.internal.", None).expect("valid origin")
}

fn n(text: &str) -> Name {
    Name::from_text(text, None).expect("valid test name")
}

fn parse(t: u16, text: &str) -> Result<RData, RDataError> {
    RData::from_text(t, text, &origin())
}

fn ok(t: u16, text: &str) -> RData {
    match parse(t, text) {
        Ok(rdata) => rdata,
        Err(e) => panic!("{text:?} should parse as {}: {e}", type_name(t)),
    }
}

fn err(t: u16, text: &str) -> String {
    match parse(t, text) {
        Ok(rdata) => panic!("{text:?} should not parse as {}, got {rdata:?}", type_name(t)),
        Err(e) => e.to_string(),
    }
}

fn wire(rdata: &RData) -> Vec<u8> {
    let mut out = Vec::new();
    rdata.to_wire(&mut out);
    out
}

#[test]
fn mnemonics_and_type_numbers() {
    assert_eq!(type_from_mnemonic("A"), Some(rtype::A));
    assert_eq!(type_from_mnemonic("aaaa"), Some(rtype::AAAA));
    assert_eq!(type_from_mnemonic("TYPE65534"), Some(65534));
    assert_eq!(type_from_mnemonic("type1"), Some(rtype::A));
    assert_eq!(type_from_mnemonic("SSHFP"), Some(44));
    assert_eq!(type_from_mnemonic("nsap-ptr"), Some(23));
    for bad in ["", "TYPE", "TYPE65536", "TYPE+1", "TYPE000001", "FOO", "TYPE1a", "TYPÉ1"] {
        assert_eq!(type_from_mnemonic(bad), None, "{bad:?}");
    }
    assert_eq!(type_name(rtype::CAA), "CAA");
    assert_eq!(type_name(65534), "TYPE65534");
    assert!(is_meta_type(rtype::OPT) && is_meta_type(rtype::ANY) && !is_meta_type(rtype::CAA));
}

#[test]
fn addresses() {
    assert_eq!(ok(rtype::A, "10.0.0.1"), RData::A(Ipv4Addr::new(10, 0, 0, 1)));
    for bad in ["10.0.0", "10.0.0.1.", "010.0.0.1", "10.0.0.256", "+1.0.0.1", "1.2.3.4x", " ", "\"10.0.0.1\""] {
        assert!(parse(rtype::A, bad).is_err(), "{bad:?}");
    }
    assert_eq!(err(rtype::A, "10.0.0"), "bad IPv4 address \"10.0.0\"");
    assert_eq!(err(rtype::A, "10.0.0.1 10.0.0.2"), "unexpected \"10.0.0.2\" after the A data");
    assert_eq!(err(rtype::A, ""), "A needs one IPv4 address");
    assert_eq!(ok(rtype::AAAA, "2001:db8::1").to_string(), "2001:db8::1");
    assert_eq!(ok(rtype::AAAA, "::ffff:10.0.0.1").to_string(), "::ffff:10.0.0.1");
    assert_eq!(ok(rtype::AAAA, "2001:DB8:0:0:0:0:0:1"), ok(rtype::AAAA, "2001:db8::1"));
    assert!(parse(rtype::AAAA, "2001:db8::1::2").is_err());
    assert!(parse(rtype::AAAA, "10.0.0.1").is_err());
}

#[test]
fn names_complete_with_origin() {
    assert_eq!(ok(rtype::NS, "ns1"), RData::Ns(n("ns1.corp.internal.")));
    assert_eq!(ok(rtype::CNAME, "@"), RData::Cname(origin()));
    assert_eq!(ok(rtype::PTR, "host.example."), RData::Ptr(n("host.example.")));
    assert_eq!(ok(rtype::DNAME, "other.example."), RData::Dname(n("other.example.")));
    assert_eq!(ok(rtype::CNAME, "WWW").to_string(), "WWW.corp.internal.");
    assert!(err(rtype::NS, "a..b").starts_with("bad domain name"));
    assert!(parse(rtype::NS, "\"ns1\"").is_err());
    assert_eq!(err(rtype::CNAME, "a b"), "unexpected \"b\" after the CNAME data");
}

#[test]
fn mx_and_srv() {
    assert_eq!(ok(rtype::MX, "10 mail"), RData::Mx { preference: 10, exchange: n("mail.corp.internal.") });
    assert_eq!(ok(rtype::MX, "10 @").to_string(), "10 corp.internal.");
    assert_eq!(err(rtype::MX, "10"), "MX needs a preference and an exchange");
    assert_eq!(err(rtype::MX, "65536 mail"), "bad MX preference \"65536\"");
    assert!(parse(rtype::MX, "-1 mail").is_err());
    let srv = ok(rtype::SRV, "0 5 5060 sip");
    assert_eq!(srv.to_string(), "0 5 5060 sip.corp.internal.");
    assert_eq!(srv.additional_name(), Some(&n("sip.corp.internal.")));
    let none = ok(rtype::SRV, "0 0 0 .");
    assert_eq!(none.to_string(), "0 0 0 .");
    assert_eq!(none.additional_name(), None);
    assert_eq!(ok(rtype::NS, "ns").additional_name(), Some(&n("ns.corp.internal.")));
    assert_eq!(ok(rtype::A, "1.2.3.4").additional_name(), None);
    assert!(parse(rtype::SRV, "1 2 3").is_err());
}

#[test]
fn soa_accepts_ttl_units() {
    let soa = ok(rtype::SOA, "ns1 hostmaster 2024010101 1h30m 15M 1w 2D");
    assert_eq!(
        soa,
        RData::Soa(Box::new(Soa {
            mname: n("ns1.corp.internal."),
            rname: n("hostmaster.corp.internal."),
            serial: 2024010101,
            refresh: 5400,
            retry: 900,
            expire: 604800,
            minimum: 172800,
        }))
    );
    assert_eq!(soa.to_string(), "ns1.corp.internal. hostmaster.corp.internal. 2024010101 5400 900 604800 172800");
    assert_eq!(err(rtype::SOA, "ns1 hm 1 2 3 4"), usage(rtype::SOA));
    assert_eq!(err(rtype::SOA, "ns1 hm 1h 2 3 4 5"), "bad SOA serial \"1h\"");
    assert_eq!(err(rtype::SOA, "ns1 hm 1 2x 3 4 5"), "bad SOA refresh \"2x\"");
    assert!(parse(rtype::SOA, "ns1 hm 4294967296 2 3 4 5").is_err());
}

#[test]
fn ttl_values() {
    assert_eq!(parse_ttl("3600"), Some(3600));
    assert_eq!(parse_ttl("1h30m"), Some(5400));
    assert_eq!(parse_ttl("1W2d3H4m5S"), Some(788645));
    assert_eq!(parse_ttl("4294967295"), Some(u32::MAX));
    for bad in ["", "h", "1h30", "1x", "4294967296", "7102w", "-1", "1 h", "1hh"] {
        assert_eq!(parse_ttl(bad), None, "{bad:?}");
    }
}

#[test]
fn txt_strings_and_escapes() {
    let txt = ok(rtype::TXT, r#""v=spf1" "-all""#);
    assert_eq!(txt, RData::Txt(vec![b"v=spf1"[..].into(), b"-all"[..].into()]));
    assert_eq!(txt.to_string(), r#""v=spf1" "-all""#);
    assert_eq!(wire(&txt), b"\x06v=spf1\x04-all");
    let escaped = ok(rtype::TXT, r#""say \"hi\" \\ \007;(x)" bare\032word"#);
    assert_eq!(escaped, RData::Txt(vec![b"say \"hi\" \\ \x07;(x)"[..].into(), b"bare word"[..].into()]));
    assert_eq!(escaped.to_string(), r#""say \"hi\" \\ \007;(x)" "bare word""#);
    assert_eq!(ok(rtype::TXT, "\"\"").to_string(), "\"\"");
    assert_eq!(ok(rtype::TXT, "\"héllo\""), RData::Txt(vec!["héllo".as_bytes().into()]));
    assert_eq!(ok(rtype::TXT, &format!("\"{}\"", "a".repeat(255))).rtype(), rtype::TXT);
    assert_eq!(err(rtype::TXT, &format!("\"{}\"", "a".repeat(256))), "TXT string longer than 255 octets");
    assert_eq!(err(rtype::TXT, ""), "TXT needs at least one string");
    assert!(err(rtype::TXT, r#""bad \25 escape""#).starts_with("bad escape"));
    assert!(parse(rtype::TXT, r#""\256""#).is_err());
    assert!(parse(rtype::TXT, "\"unterminated").is_err());
    let huge = vec![format!("\"{}\"", "a".repeat(255)); 300].join(" ");
    assert_eq!(err(rtype::TXT, &huge), "record data of 76800 octets is longer than 65535");
}

#[test]
fn hinfo_and_caa() {
    let hinfo = ok(rtype::HINFO, "\"Intel Xeon\" Linux");
    assert_eq!(hinfo.to_string(), "\"Intel Xeon\" \"Linux\"");
    assert_eq!(err(rtype::HINFO, "x86"), "HINFO needs a CPU string and an OS string");
    assert!(parse(rtype::HINFO, "a b c").is_err());
    let caa = ok(rtype::CAA, "0 issue \"ca.example\"");
    assert_eq!(caa.to_string(), "0 issue \"ca.example\"");
    assert_eq!(wire(&caa), b"\x00\x05issueca.example");
    assert_eq!(ok(rtype::CAA, "128 iodef mailto:x@example.com").to_string(), "128 iodef \"mailto:x@example.com\"");
    assert!(parse(rtype::CAA, "256 issue x").is_err());
    assert!(err(rtype::CAA, "0 is-sue x").starts_with("CAA tag"));
    assert!(parse(rtype::CAA, "0 abcdefghijklmnop x").is_err());
    assert!(parse(rtype::CAA, "0 issue").is_err());
    assert!(parse(rtype::CAA, "0 \"issue\" x").is_err());
}

#[test]
fn generic_form() {
    assert_eq!(ok(rtype::A, "\\# 4 0A000001"), RData::A(Ipv4Addr::new(10, 0, 0, 1)));
    let unknown = ok(65534, "\\# 3 ab cdef");
    assert_eq!(unknown, RData::Unknown { rtype: 65534, data: vec![0xab, 0xcd, 0xef].into() });
    assert_eq!(unknown.to_string(), "\\# 3 abcdef");
    assert_eq!(ok(65534, "\\# 0").to_string(), "\\# 0");
    assert_eq!(ok(rtype::SSHFP, "\\# 2 0102"), RData::Unknown { rtype: 44, data: vec![1, 2].into() });
    assert_eq!(err(rtype::A, "\\# 4 0a0000"), "\\# length 4 does not match 3 octets of data");
    assert_eq!(err(65534, "\\# 1 abc"), "\\# hex data has an odd number of digits");
    assert!(parse(65534, "\\# 1 zz").is_err());
    assert!(parse(65534, "\\#").is_err());
    assert!(parse(65534, "\\# 65536").is_err());
    assert!(parse(rtype::A, "\\# 3 0a0000").is_err());
    assert!(parse(rtype::TXT, "\\# 0").is_err());
    let soa = ok(rtype::SOA, "a. b. 1 2 3 4 5");
    let hex: String = wire(&soa).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ok(rtype::SOA, &format!("\\# {} {hex}", wire(&soa).len())), soa);
}

#[test]
fn unsupported_and_meta_types() {
    assert_eq!(
        err(rtype::SSHFP, "1 1 abcd"),
        "type SSHFP is not supported in presentation form; write it as TYPE44 \\# <length> <hex>"
    );
    assert!(err(65534, "abc").contains("\\#"));
    assert!(err(rtype::OPT, "\\# 0").contains("meta"));
    assert!(parse(rtype::ANY, "1.2.3.4").is_err());
    assert_eq!(ok(rtype::SPF, "\"v=spf1 -all\"").to_string(), "\\# 12 0b763d73706631202d616c6c");
}

#[test]
fn wire_round_trips() {
    let cases = [
        (rtype::A, "192.0.2.1"),
        (rtype::AAAA, "2001:db8::1"),
        (rtype::NS, "Ns1.Example."),
        (rtype::CNAME, "a.b."),
        (rtype::PTR, "."),
        (rtype::DNAME, "x.y."),
        (rtype::MX, "10 mx.example."),
        (rtype::SRV, "1 2 3 t.example."),
        (rtype::SOA, "a. b. 1 2 3 4 5"),
        (rtype::TXT, "\"a\" \"\" \"\\255\""),
        (rtype::HINFO, "a b"),
        (rtype::CAA, "0 issue \";\""),
        (65534, "\\# 2 beef"),
    ];
    for (t, text) in cases {
        let rdata = ok(t, text);
        assert_eq!(rdata.rtype(), t);
        let bytes = wire(&rdata);
        assert_eq!(RData::from_wire(t, &bytes).as_ref(), Ok(&rdata), "{text}");
        let printed = rdata.to_string();
        assert_eq!(RData::from_text(t, &printed, &Name::root()).as_ref(), Ok(&rdata), "{printed}");
    }
}

#[test]
fn bad_wire_data() {
    assert!(RData::from_wire(rtype::A, &[1, 2, 3]).is_err());
    assert!(RData::from_wire(rtype::A, &[1, 2, 3, 4, 5]).is_err());
    assert!(RData::from_wire(rtype::NS, &[0xc0, 0x0c]).is_err());
    assert!(RData::from_wire(rtype::MX, &[0, 1, 3, b'a']).is_err());
    assert!(RData::from_wire(rtype::TXT, &[]).is_err());
    assert!(RData::from_wire(rtype::TXT, &[5, b'a']).is_err());
    assert!(RData::from_wire(rtype::CAA, &[0, 0]).is_err());
    assert_eq!(
        RData::from_wire(rtype::SOA, &[0, 0, 1]).map_err(|e| e.to_string()),
        Err("bad SOA record data: truncated".to_string())
    );
}

#[test]
fn random_wire_bytes_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let types = [1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 39, 257, 65534];
    for round in 0..3000 {
        let bytes: Vec<u8> = (0..round % 40)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Mostly small values, so that lengths and labels often line up.
                if state % 3 == 0 {
                    (state >> 8) as u8
                } else {
                    (state >> 8) as u8 % 8
                }
            })
            .collect();
        let t = types[round % types.len()];
        if let Ok(rdata) = RData::from_wire(t, &bytes) {
            assert_eq!(wire(&rdata), bytes);
            let _ = rdata.to_string();
        }
    }
}
