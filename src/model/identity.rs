//! Client identities a front end vouches for: the VPC id or the endpoint a load balancer or private endpoint names
//! in its PROXY v2 header, and the endpoint names of the configuration they are matched against.
//!
//! An identity is a kind and a value. The value is kept as the front end sends it (ASCII ids; the 8-byte big-endian
//! Private Service Connect id; the 4-byte little-endian Azure link id), so matching a datagram's identity needs no
//! allocation: the snapshot keys VPCs by `kind byte ‖ value`, built from the configuration once.

use std::fmt;

/// What an identity names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// A VPC id: Alibaba Cloud PrivateLink's own (type 0xE1, subtype 0x01), or the operator's custom TLV.
    VpcId,
    /// An AWS VPC endpoint id (`vpce-…`; type 0xEA, subtype 0x01).
    AwsEndpoint,
    /// An Alibaba Cloud PrivateLink endpoint id (type 0xE1, subtype 0x02).
    AlibabaEndpoint,
    /// A Google Private Service Connect connection id (type 0xE0, 8 bytes big-endian).
    PscConnection,
    /// An Azure Private Link id (type 0xEE, subtype 0x01, 4 bytes little-endian).
    AzureLink,
}

impl IdentityKind {
    fn tag(self) -> u8 {
        match self {
            IdentityKind::VpcId => b'v',
            IdentityKind::AwsEndpoint => b'a',
            IdentityKind::AlibabaEndpoint => b'e',
            IdentityKind::PscConnection => b'p',
            IdentityKind::AzureLink => b'z',
        }
    }
}

/// The longest identity value matched (a header is at most 512 bytes, so no TLV value is longer).
pub const MAX_IDENTITY: usize = 512;

/// An identity borrowed from a header (or built from configuration text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    pub kind: IdentityKind,
    pub value: &'a [u8],
}

impl Identity<'_> {
    /// A copy that owns its bytes.
    pub fn to_owned(&self) -> OwnedIdentity {
        OwnedIdentity { kind: self.kind, value: self.value.to_vec() }
    }

    /// The lookup key, `kind ‖ value`, written into `buf`; `None` when the value is too long to be one.
    pub fn key<'b>(&self, buf: &'b mut [u8; MAX_IDENTITY + 1]) -> Option<&'b [u8]> {
        let len = self.value.len();
        if len == 0 || len > MAX_IDENTITY {
            return None;
        }
        buf[0] = self.kind.tag();
        buf[1..=len].copy_from_slice(self.value);
        Some(&buf[..=len])
    }
}

impl fmt::Display for Identity<'_> {
    /// The configuration's spelling: `vpce-…`, `alibaba:ep-…`, `psc:1234`, `azure:5678`, or the VPC id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(self.value);
        match self.kind {
            IdentityKind::VpcId | IdentityKind::AwsEndpoint => write!(f, "{text}"),
            IdentityKind::AlibabaEndpoint => write!(f, "alibaba:{text}"),
            IdentityKind::PscConnection => match <[u8; 8]>::try_from(self.value) {
                Ok(bytes) => write!(f, "psc:{}", u64::from_be_bytes(bytes)),
                Err(_) => write!(f, "psc:?"),
            },
            IdentityKind::AzureLink => match <[u8; 4]>::try_from(self.value) {
                Ok(bytes) => write!(f, "azure:{}", u32::from_le_bytes(bytes)),
                Err(_) => write!(f, "azure:?"),
            },
        }
    }
}

/// An identity that owns its bytes: what `explain` is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedIdentity {
    pub kind: IdentityKind,
    pub value: Vec<u8>,
}

impl OwnedIdentity {
    /// An endpoint id as the configuration spells it (`vpce-…`, `alibaba:…`, `psc:…`, `azure:…`).
    pub fn endpoint(text: &str) -> Result<OwnedIdentity, String> {
        let (kind, value) = endpoint_parts(text)?;
        Ok(OwnedIdentity { kind, value })
    }

    /// A VPC id, as Alibaba PrivateLink or the operator's own TLV sends it.
    pub fn vpc_id(id: &str) -> Result<OwnedIdentity, String> {
        Ok(OwnedIdentity { kind: IdentityKind::VpcId, value: id_bytes(id, id)? })
    }

    pub fn borrow(&self) -> Identity<'_> {
        Identity { kind: self.kind, value: &self.value }
    }
}

/// An endpoint name of the configuration, as its lookup key; the error says what a valid one looks like.
pub fn endpoint_key(text: &str) -> Result<Box<[u8]>, String> {
    let (kind, value) = endpoint_parts(text)?;
    key_of(kind, &value).ok_or_else(|| format!("endpoint {text:?} is too long"))
}

/// An endpoint name's kind and the bytes a front end sends for it.
fn endpoint_parts(text: &str) -> Result<(IdentityKind, Vec<u8>), String> {
    let (kind, value): (IdentityKind, Vec<u8>) = if let Some(rest) = text.strip_prefix("alibaba:") {
        (IdentityKind::AlibabaEndpoint, id_bytes(rest, text)?)
    } else if let Some(rest) = text.strip_prefix("psc:") {
        let n: u64 = rest.parse().map_err(|_| format!("endpoint {text:?}: psc: takes a decimal connection id"))?;
        (IdentityKind::PscConnection, n.to_be_bytes().to_vec())
    } else if let Some(rest) = text.strip_prefix("azure:") {
        let n: u32 = rest.parse().map_err(|_| format!("endpoint {text:?}: azure: takes a decimal link id"))?;
        (IdentityKind::AzureLink, n.to_le_bytes().to_vec())
    } else if text.starts_with("vpce-") {
        (IdentityKind::AwsEndpoint, id_bytes(text, text)?)
    } else {
        return Err(format!(
            "endpoint {text:?}: expected an AWS endpoint id (vpce-…), alibaba:<endpoint id>, psc:<connection id> or \
             azure:<link id>"
        ));
    };
    Ok((kind, value))
}

/// The lookup key of a VPC id (the VPC's own id or its `cloud_id`).
pub fn vpc_id_key(id: &str) -> Option<Box<[u8]>> {
    key_of(IdentityKind::VpcId, id.as_bytes())
}

fn key_of(kind: IdentityKind, value: &[u8]) -> Option<Box<[u8]>> {
    let mut buf = [0u8; MAX_IDENTITY + 1];
    Identity { kind, value }.key(&mut buf).map(Box::from)
}

/// An id as a front end spells it: printable ASCII without spaces.
fn id_bytes(id: &str, text: &str) -> Result<Vec<u8>, String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("endpoint {text:?}: the id must be printable ASCII without spaces"));
    }
    Ok(id.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_endpoints_match_what_front_ends_send() {
        let mut buf = [0u8; MAX_IDENTITY + 1];
        let aws = Identity { kind: IdentityKind::AwsEndpoint, value: b"vpce-0abc" };
        assert_eq!(endpoint_key("vpce-0abc").ok().as_deref(), aws.key(&mut buf));
        let psc = Identity { kind: IdentityKind::PscConnection, value: &1234u64.to_be_bytes() };
        assert_eq!(endpoint_key("psc:1234").ok().as_deref(), psc.key(&mut buf));
        let azure = Identity { kind: IdentityKind::AzureLink, value: &5678u32.to_le_bytes() };
        assert_eq!(endpoint_key("azure:5678").ok().as_deref(), azure.key(&mut buf));
        let ali = Identity { kind: IdentityKind::AlibabaEndpoint, value: b"ep-1" };
        assert_eq!(endpoint_key("alibaba:ep-1").ok().as_deref(), ali.key(&mut buf));
        let vpc = Identity { kind: IdentityKind::VpcId, value: b"vpc-9" };
        assert_eq!(vpc_id_key("vpc-9").as_deref(), vpc.key(&mut buf));
        assert_ne!(endpoint_key("alibaba:vpc-9").ok(), vpc_id_key("vpc-9"), "kinds never collide");
        assert_eq!(psc.to_string(), "psc:1234");
        assert_eq!(azure.to_string(), "azure:5678");
    }

    #[test]
    fn bad_endpoint_names_say_what_is_expected() {
        for bad in ["", "ep-1", "psc:x", "azure:-1", "alibaba:", "vpce-a b", "psc:18446744073709551616"] {
            assert!(endpoint_key(bad).is_err(), "{bad:?}");
        }
        let long = format!("vpce-{}", "a".repeat(MAX_IDENTITY));
        assert!(endpoint_key(&long).is_err());
    }
}
