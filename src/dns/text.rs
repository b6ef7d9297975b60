//! The master-file tokenizer (RFC 1035 §5.1): quotes, escapes, comments and parentheses. Shared by the zone-file
//! parser and by record data written as text ([`crate::dns::rdata::RData::from_text`]); it knows nothing of
//! records, and must never panic or loop forever, whatever the input.

/// One token of a master file. Quoted strings arrive with `quoted` set and without their quotes; escapes (`\X`,
/// `\DDD`) are kept raw in `text` for the consumer to decode. Octets that are not ASCII are given as `\DDD` escapes,
/// so that any input fits a `String` without changing its meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
}

/// Splits text into tokens with the zone-file rules, ignoring line structure (used by [`crate::dns::rdata::RData::from_text`]).
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut lexer = Lexer::new(text.as_bytes());
    let mut tokens = Vec::new();
    while let Some(entry) = lexer.next_entry().map_err(|(_, message)| message)? {
        tokens.extend(entry.tokens);
    }
    Ok(tokens)
}

/// One logical line: a physical line, or several joined by parentheses.
pub(crate) struct Entry {
    /// 1-based line where it starts.
    pub(crate) line: usize,
    /// It starts with blank space, so the owner is the previous record's.
    pub(crate) blank_owner: bool,
    pub(crate) tokens: Vec<Token>,
}

/// Tokenizer errors: the line of the entry and the message.
pub(crate) type LexError = (usize, String);

pub(crate) struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Lexer { bytes, pos: 0, line: 1 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes one octet, counting lines.
    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    /// The next logical line holding at least one token, or `None` at the end of the input.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, LexError> {
        while self.pos < self.bytes.len() {
            let line = self.line;
            let blank_owner = matches!(self.peek(), Some(b' ' | b'\t'));
            let tokens = self.logical_line(line)?;
            if !tokens.is_empty() {
                return Ok(Some(Entry { line, blank_owner, tokens }));
            }
        }
        Ok(None)
    }

    /// Tokens up to the end of the line, where newlines inside parentheses do not end it. Every step consumes at
    /// least one octet.
    fn logical_line(&mut self, start: usize) -> Result<Vec<Token>, LexError> {
        let mut tokens = Vec::new();
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'\n' if depth == 0 => {
                    self.bump();
                    return Ok(tokens);
                }
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.bump();
                }
                b';' => self.skip_comment(),
                b'(' => {
                    depth += 1;
                    self.bump();
                }
                b')' if depth == 0 => return Err((start, "')' without a matching '('".into())),
                b')' => {
                    depth -= 1;
                    self.bump();
                }
                b'"' => tokens.push(self.quoted(start)?),
                _ => tokens.push(self.word()),
            }
        }
        if depth > 0 {
            return Err((start, "end of file inside parentheses: missing ')'".into()));
        }
        Ok(tokens)
    }

    /// Skips a comment up to (not including) the newline.
    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|b| b != b'\n') {
            self.bump();
        }
    }

    /// A quoted string; the opening quote is the current octet.
    fn quoted(&mut self, start: usize) -> Result<Token, LexError> {
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return Err((start, "unterminated quoted string".into())),
                Some(b'"') => return Ok(Token { text, quoted: true }),
                Some(b'\n') => return Err((start, "newline inside a quoted string (missing '\"'?)".into())),
                Some(b'\\') => push_escape(&mut text, self.bump()),
                Some(b) => push_octet(&mut text, b),
            }
        }
    }

    /// An unquoted token, up to blank space, a newline, `;`, a parenthesis or a quote; the current octet is not one.
    fn word(&mut self) -> Token {
        let mut text = String::new();
        while let Some(b) = self.peek() {
            // The first octet is always taken, so that the caller always makes progress.
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"') && !text.is_empty() {
                break;
            }
            self.bump();
            match b {
                b'\\' => push_escape(&mut text, self.bump()),
                _ => push_octet(&mut text, b),
            }
        }
        Token { text, quoted: false }
    }
}

/// Appends an octet, as `\DDD` when it is not ASCII.
fn push_octet(text: &mut String, b: u8) {
    if b.is_ascii() {
        text.push(char::from(b));
    } else {
        text.push_str(&format!("\\{b:03}"));
    }
}

/// Appends a backslash escape whose second octet is `next` (a lone backslash at the end of the input stays as is).
fn push_escape(text: &mut String, next: Option<u8>) {
    match next {
        Some(b) if !b.is_ascii() => text.push_str(&format!("\\{b:03}")),
        Some(b) => {
            text.push('\\');
            text.push(char::from(b));
        }
        None => text.push('\\'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_rules() {
        let t = |text: &str, quoted| Token { text: text.into(), quoted };
        let tokens = tokenize("a\\ b \"c \\\" d\"e(f)g;h\ni").ok();
        let expected =
            vec![t("a\\ b", false), t("c \\\" d", true), t("e", false), t("f", false), t("g", false), t("i", false)];
        assert_eq!(tokens, Some(expected));
        assert_eq!(tokenize("\"é\"").ok(), Some(vec![t("\\195\\169", true)]));
        assert!(tokenize("\"abc").is_err());
        assert!(tokenize("(abc").is_err());
        assert_eq!(tokenize("x\\").ok(), Some(vec![t("x\\", false)]));
    }
}
