//! Fuzz target: zone-file text as a tenant may send it (`PUT /v1/zones/{id}/file`), through the master-file parser
//! that refuses `$INCLUDE`. It must never panic nor loop, never read a file, and every record it returns must print
//! and parse back to itself (what the API stores is the printed form, read back at every start).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vpcdns::dns::name::Name;
use vpcdns::dns::rdata::RData;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Name::from_text("corp.internal.", None).expect("origin");
    let Ok(records) = vpcdns::dns::zonefile::parse_untrusted_zone(text, Path::new("fuzz.zone"), &origin) else { return };
    for record in &records {
        let printed = record.rdata.to_string();
        let parsed = RData::from_text(record.rdata.rtype(), &printed, &Name::root())
            .unwrap_or_else(|e| panic!("{} {:?} prints as {printed:?}, which does not parse: {e}", record.owner, record.rdata));
        assert_eq!(parsed, record.rdata, "{printed:?} does not parse back to itself");
        let owner = Name::from_text(&record.owner.to_string(), None).expect("the owner prints and parses");
        assert_eq!(owner.wire(), record.owner.wire());
    }
});
