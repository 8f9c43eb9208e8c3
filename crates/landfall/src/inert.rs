//! Text from a host, made inert for a terminal.
//!
//! A host may print anything: a carriage return that draws over the line
//! it is on (and forges another host's prefix), an escape sequence that
//! moves the cursor, retitles the window or writes the clipboard (OSC 52),
//! a bell. [`inert`] is the one function through which every byte a host
//! sends reaches a person's terminal: the binary's human output calls it
//! on every piece of text that came from a host (command output, logs,
//! hook output, errors that quote a host's stderr, paths and files read
//! from a host). JSON output does not: serde escapes every control
//! character, and the bytes stay exact.
//!
//! The scheme is `cat -v`'s, which terminal users know: the C0 controls
//! and DEL in caret notation (`^[` for ESC, `^M` for CR, `^G` for BEL,
//! `^?` for DEL), the C1 controls (U+0080 to U+009F) as `M-` and the caret
//! form of the control 128 below (`M-^[` for CSI's cousin U+009B). Tab and
//! newline stay: they move no cursor backwards and draw nothing over.
//! Bytes that are not UTF-8 are shown as U+FFFD ([`inert_bytes`]).

use std::borrow::Cow;

/// `text` with every control character but tab and newline shown inert.
pub fn inert(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| shown_as(c).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match shown_as(c) {
            Some(shown) => shown.write(&mut out),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `bytes` as text (invalid UTF-8 shown as U+FFFD), made [`inert`].
pub fn inert_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(text) => inert(text),
        Cow::Owned(text) => Cow::Owned(inert(&text).into_owned()),
    }
}

/// How a control character is shown: caret notation, with `M-` before it
/// for a C1 control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caret {
    meta: bool,
    /// The character after the caret.
    letter: char,
}

impl Caret {
    fn write(self, out: &mut String) {
        if self.meta {
            out.push_str("M-");
        }
        out.push('^');
        out.push(self.letter);
    }
}

/// How `c` is shown, if it is a control character other than tab and
/// newline.
pub(crate) fn shown_as(c: char) -> Option<Caret> {
    let code = u32::from(c);
    let (meta, low) = match code {
        0x09 | 0x0a => return None,
        0x00..=0x1f | 0x7f => (false, code),
        0x80..=0x9f => (true, code - 0x80),
        _ => return None,
    };
    // `^?` for DEL; `^@` to `^_` for the others, the control plus 64.
    let letter = if low == 0x7f {
        '?'
    } else {
        char::from_u32(low + 0x40).expect("an ASCII letter or sign")
    };
    Some(Caret { meta, letter })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host's carriage return drew over the prefix of its line, and
    /// could forge another host's.
    #[test]
    fn a_carriage_return_is_shown_not_obeyed() {
        assert_eq!(inert("ok\rweb2 | forged"), "ok^Mweb2 | forged");
    }

    /// OSC 52 wrote the operator's clipboard; any escape sequence is shown
    /// as its characters, and so is a bell.
    #[test]
    fn an_escape_sequence_is_shown_not_obeyed() {
        assert_eq!(
            inert("\x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x1b[31mred"),
            "^[]52;c;cm0gLXJmIH4=^G ^[[2J^[[31mred"
        );
    }

    #[test]
    fn every_c0_c1_and_del_is_shown_and_tab_and_newline_stay() {
        assert_eq!(inert("\0\x01\x08\x0b\x0c\x1f\x7f"), "^@^A^H^K^L^_^?");
        assert_eq!(inert("\u{80}\u{9b}\u{9f}"), "M-^@M-^[M-^_");
        assert_eq!(inert("a\tb\nc"), "a\tb\nc");
        // Text that needs nothing is not copied.
        assert!(matches!(inert("plain ünïcode ✓"), Cow::Borrowed(_)));
        // Nothing shown can be taken for a control character again.
        let all: String = (0..=0x0010_ffff).filter_map(char::from_u32).collect();
        assert!(!inert(&all).chars().any(|c| shown_as(c).is_some()));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_replacement_characters() {
        assert_eq!(inert_bytes(b"a\xff\x9b\x1bb"), "a\u{fffd}\u{fffd}^[b");
    }
}
