//! Domain names in uncompressed wire format (RFC 1035 §3.1).
//!
//! A `Name` is always absolute and always valid (labels of 1..=63 octets, at most 255 octets in all): it can only be
//! built by the checked constructors here. It keeps the case it was written in, because answers must render names
//! the way the zone spells them; every comparison and every table key uses [`Name::lower`] or
//! [`lower_into`], since DNS matching is case-insensitive (RFC 4343).

use smallvec::SmallVec;
use std::fmt;

/// The longest name in wire format, root label included (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035 §2.3.4).
pub(crate) const MAX_LABEL_LEN: usize = 63;

/// Why a text or wire name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in {0:?}")]
    EmptyLabel(String),
    #[error("label longer than 63 octets in {0:?}")]
    LabelTooLong(String),
    #[error("name longer than 255 octets: {0:?}")]
    TooLong(String),
    #[error("bad escape sequence in {0:?}")]
    BadEscape(String),
    #[error("relative name {0:?} with no origin to complete it")]
    NoOrigin(String),
}

/// An absolute domain name in wire format, case preserved.
///
/// Names of up to `INLINE_NAME` wire bytes (nearly every private name) are stored inline, not on the heap: a million
/// records then hold no million name allocations, and ordering records by owner compares memory already at hand
/// instead of chasing a pointer per comparison.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(SmallVec<[u8; INLINE_NAME]>);

/// Wire bytes a [`Name`] holds without a heap allocation.
pub(crate) const INLINE_NAME: usize = 32;

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name(SmallVec::from_slice(&[0u8]))
    }

    /// Builds a name from uncompressed wire bytes, checking every rule.
    pub fn from_wire(wire: &[u8]) -> Option<Name> {
        if wire_len(wire)? != wire.len() {
            return None;
        }
        Some(Name(SmallVec::from_slice(wire)))
    }

    /// Parses presentation format (RFC 1035 §5.1): `\.` and `\DDD` escapes; `@` is the origin; a name without a
    /// trailing dot is relative to `origin`.
    pub fn from_text(text: &str, origin: Option<&Name>) -> Result<Name, NameError> {
        if text == "@" {
            return origin.cloned().ok_or_else(|| NameError::NoOrigin(text.into()));
        }
        if text == "." {
            return Ok(Name::root());
        }
        let mut wire = Vec::with_capacity(text.len() + 2);
        let mut label = Vec::with_capacity(MAX_LABEL_LEN);
        let bytes = text.as_bytes();
        let mut absolute = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    if label.is_empty() {
                        return Err(NameError::EmptyLabel(text.into()));
                    }
                    push_label(&mut wire, &label, text)?;
                    label.clear();
                    if i + 1 == bytes.len() {
                        absolute = true;
                    }
                    i += 1;
                }
                b'\\' => {
                    let (byte, used) = unescape(&bytes[i + 1..]).ok_or_else(|| NameError::BadEscape(text.into()))?;
                    label.push(byte);
                    i += 1 + used;
                }
                b => {
                    label.push(b);
                    i += 1;
                }
            }
        }
        if !label.is_empty() {
            push_label(&mut wire, &label, text)?;
        }
        if absolute {
            wire.push(0);
        } else {
            let origin = origin.ok_or_else(|| NameError::NoOrigin(text.into()))?;
            wire.extend_from_slice(origin.wire());
        }
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(text.into()));
        }
        Ok(Name(SmallVec::from_slice(&wire)))
    }

    /// The wire bytes, root label included.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// The same name in lower case: the form every table is keyed by.
    pub fn lower(&self) -> Name {
        let mut wire = self.0.clone();
        wire.make_ascii_lowercase();
        Name(wire)
    }

    /// Number of labels, root excluded (`www.corp.internal.` has 3).
    pub(crate) fn label_count(&self) -> usize {
        label_count(&self.0)
    }

    /// True when `self` is `ancestor` or below it (case-insensitive).
    pub(crate) fn is_at_or_below(&self, ancestor: &Name) -> bool {
        is_at_or_below(&self.0, &ancestor.0)
    }

    /// The name with its first label removed; the root has no parent.
    pub fn parent(&self) -> Option<Name> {
        let len = *self.0.first()? as usize;
        if len == 0 {
            return None;
        }
        Some(Name(SmallVec::from_slice(&self.0[1 + len..])))
    }

    /// `*.<self>`: the wildcard owner below this name.
    #[cfg(test)]
    pub(crate) fn wildcard_child(&self) -> Option<Name> {
        self.prepend_label(b"*")
    }

    /// `<label>.<self>`, or `None` when the result would be too long.
    pub(crate) fn prepend_label(&self, label: &[u8]) -> Option<Name> {
        if label.is_empty() || label.len() > MAX_LABEL_LEN || self.0.len() + label.len() + 1 > MAX_NAME_LEN {
            return None;
        }
        let mut wire = Vec::with_capacity(self.0.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
        wire.extend_from_slice(&self.0);
        Some(Name(SmallVec::from_slice(&wire)))
    }

    /// Presentation form relative to `origin` when below it (`www` for `www.corp.internal.` in `corp.internal.`),
    /// `@` for the origin itself, absolute otherwise.
    pub(crate) fn relative_to(&self, origin: &Name) -> String {
        if self.lower() == origin.lower() {
            return "@".into();
        }
        if self.is_at_or_below(origin) {
            let keep = self.0.len() - origin.0.len();
            let mut text = String::new();
            write_labels(&self.0[..keep], &mut text);
            return text;
        }
        self.to_string()
    }
}

fn push_label(wire: &mut Vec<u8>, label: &[u8], text: &str) -> Result<(), NameError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(text.into()));
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    if wire.len() + 1 > MAX_NAME_LEN {
        return Err(NameError::TooLong(text.into()));
    }
    Ok(())
}

/// Decodes the escape after a backslash: `\DDD` (decimal octet) or `\X` (the character itself). Returns the byte
/// and how many input bytes the escape used after the backslash.
pub fn unescape(rest: &[u8]) -> Option<(u8, usize)> {
    match rest {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            let value = (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16;
            u8::try_from(value).ok().map(|v| (v, 3))
        }
        [d, ..] if d.is_ascii_digit() => None,
        [x, ..] => Some((*x, 1)),
        [] => None,
    }
}

/// Length of the uncompressed wire name at the start of `wire`, or `None` if it is not a valid name.
pub(crate) fn wire_len(wire: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = *wire.get(pos)? as usize;
        if len > MAX_LABEL_LEN {
            return None;
        }
        pos += 1 + len;
        if pos > MAX_NAME_LEN {
            return None;
        }
        if len == 0 {
            return Some(pos);
        }
    }
}

/// Number of labels of a valid uncompressed wire name, root excluded.
pub(crate) fn label_count(wire: &[u8]) -> usize {
    let mut count = 0;
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        count += 1;
        pos += 1 + len as usize;
    }
    count
}

/// Copies a valid wire name into `buf` in lower case and returns the lowered slice. The query path uses this with a
/// stack buffer so that matching never allocates.
pub(crate) fn lower_into<'b>(wire: &[u8], buf: &'b mut [u8; MAX_NAME_LEN]) -> &'b [u8] {
    let len = wire.len().min(MAX_NAME_LEN);
    for (dst, src) in buf[..len].iter_mut().zip(wire) {
        *dst = src.to_ascii_lowercase();
    }
    &buf[..len]
}

/// The suffix of `wire` that has `labels` labels (root excluded), as a sub-slice: a suffix of a wire name starting
/// at a label boundary is itself a wire name.
pub(crate) fn suffix_with_labels(wire: &[u8], labels: usize) -> &[u8] {
    let total = label_count(wire);
    let mut skip = total.saturating_sub(labels);
    let mut pos = 0;
    while skip > 0 {
        pos += 1 + wire[pos] as usize;
        skip -= 1;
    }
    &wire[pos..]
}

/// True when the valid wire name `name` equals `ancestor` or lies below it (case-insensitive).
pub(crate) fn is_at_or_below(name: &[u8], ancestor: &[u8]) -> bool {
    if ancestor.len() > name.len() {
        return false;
    }
    let start = name.len() - ancestor.len();
    if !name[start..].eq_ignore_ascii_case(ancestor) {
        return false;
    }
    // The tail must start on a label boundary of `name`.
    let mut pos = 0;
    while pos < start {
        pos += 1 + name[pos] as usize;
    }
    pos == start
}

/// Writes the labels of a wire fragment (no root label needed) in presentation form, dot-separated, escaping
/// what RFC 1035 §5.1 requires.
fn write_labels(wire: &[u8], out: &mut String) {
    let mut pos = 0;
    let mut first = true;
    while pos < wire.len() {
        let len = wire[pos] as usize;
        if len == 0 {
            break;
        }
        if !first {
            out.push('.');
        }
        first = false;
        for &b in &wire[pos + 1..pos + 1 + len] {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        pos += 1 + len;
    }
}

/// Presentation form of a valid wire name, with a trailing dot.
pub(crate) fn wire_to_string(wire: &[u8]) -> String {
    if wire.first() == Some(&0) {
        return ".".into();
    }
    let mut text = String::with_capacity(wire.len() + 1);
    write_labels(wire, &mut text);
    text.push('.');
    text
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&wire_to_string(&self.0))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Name {
        Name::from_text(text, None).expect("valid test name")
    }

    #[test]
    fn parses_absolute_and_relative() {
        let origin = n("corp.internal.");
        assert_eq!(n("www.corp.internal.").wire(), b"\x03www\x04corp\x08internal\x00");
        assert_eq!(Name::from_text("www", Some(&origin)).unwrap(), n("www.corp.internal."));
        assert_eq!(Name::from_text("@", Some(&origin)).unwrap(), origin);
        assert_eq!(n(".").wire(), b"\x00");
        assert!(Name::from_text("www", None).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(Name::from_text("a..b.", None), Err(NameError::EmptyLabel(_))));
        let long_label = format!("{}.", "a".repeat(64));
        assert!(matches!(Name::from_text(&long_label, None), Err(NameError::LabelTooLong(_))));
        let long_name = format!("{}.", vec!["a".repeat(63); 4].join("."));
        assert!(matches!(Name::from_text(&long_name, None), Err(NameError::TooLong(_))));
        assert!(Name::from_text("a\\300.", None).is_err());
    }

    #[test]
    fn escapes_round_trip() {
        let name = n("a\\.b.c\\032d.");
        assert_eq!(name.wire(), b"\x03a.b\x03c d\x00");
        assert_eq!(name.to_string(), "a\\.b.c\\032d.");
    }

    #[test]
    fn ancestry_is_case_insensitive_and_label_aligned() {
        assert!(n("WWW.Corp.internal.").is_at_or_below(&n("corp.INTERNAL.")));
        assert!(n("corp.internal.").is_at_or_below(&n("corp.internal.")));
        assert!(!n("xcorp.internal.").is_at_or_below(&n("corp.internal.")));
        assert!(n("a.b.").is_at_or_below(&Name::root()));
    }

    #[test]
    fn suffixes_and_relative_forms() {
        let name = n("a.b.c.");
        assert_eq!(suffix_with_labels(name.wire(), 2), b"\x01b\x01c\x00");
        assert_eq!(suffix_with_labels(name.wire(), 0), b"\x00");
        assert_eq!(name.relative_to(&n("b.c.")), "a");
        assert_eq!(name.relative_to(&n("x.")), "a.b.c.");
        assert_eq!(name.parent().unwrap(), n("b.c."));
        assert_eq!(n("b.c.").wildcard_child().unwrap(), n("*.b.c."));
    }
}
