//! What text Articula stores: one rule for every text field, applied in the case actor (and on
//! the upload and REST paths) before anything gets a seq.
//!
//! A text must be stored the same way on SQLite and PostgreSQL and mean the same to every
//! reader. So:
//! - control characters are refused (U+0000 alone fails PostgreSQL's `text` type, and with it
//!   the whole group commit it sits in), except tab and newline in multi-line texts; a carriage
//!   return is turned into a newline (`\r\n` → `\n`), as browsers send it either way;
//! - text is normalised to Unicode NFC, so that the same visible name is the same string;
//! - names that people recognise a thing by (labels, file names) refuse bidirectional controls
//!   and invisible characters: `scan\u{202E}lts.exe` would show as `scanexe.stl`. Chat keeps
//!   them (a zero-width joiner is part of many emoji and scripts); the web client renders them
//!   inert.
//!
//! Lone surrogates cannot reach here: JSON decoding and MessagePack's UTF-8 check refuse them
//! with the frame.

use unicode_normalization::UnicodeNormalization;

/// How a text is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// One line that names something: a case label, a file name, a person's name.
    Name,
    /// Free text over several lines: chat, comments, notes, transcripts.
    Prose,
}

/// Why a text was refused, in words safe to show to the person who typed it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TextError(pub String);

/// Bidirectional formatting characters: embeddings, overrides, isolates and marks.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that take no space and draw nothing (besides the bidirectional ones).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}' | '\u{034F}'
    )
}

fn describe(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Checks and normalises a text: `field` names it in the error, `max` is its longest length in
/// characters (after normalisation). Surrounding whitespace is trimmed; an empty result is
/// refused (callers with optional texts check for emptiness first).
pub fn clean(field: &str, value: &str, kind: TextKind, max: usize) -> Result<String, TextError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    continue;
                }
                '\n'
            }
            c => c,
        };
        let allowed_control = kind == TextKind::Prose && matches!(c, '\t' | '\n');
        if c.is_control() && !allowed_control {
            return Err(TextError(format!(
                "{field} contains the control character {}, which cannot be stored",
                describe(c)
            )));
        }
        if kind == TextKind::Name && (is_bidi_control(c) || is_invisible(c)) {
            return Err(TextError(format!(
                "{field} contains the invisible character {}, which could disguise it",
                describe(c)
            )));
        }
        out.push(c);
    }
    let normalised: String = out.trim().nfc().collect();
    if normalised.is_empty() {
        return Err(TextError(format!("{field} must not be empty")));
    }
    if normalised.chars().count() > max {
        return Err(TextError(format!("{field} is longer than {max} characters")));
    }
    Ok(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_other_controls_are_refused_everywhere() {
        for bad in ["a\u{0}b", "a\u{1}b", "a\u{1b}[31mb", "a\u{7f}b", "a\u{85}b"] {
            assert!(clean("text", bad, TextKind::Prose, 100).is_err(), "{bad:?}");
            assert!(clean("label", bad, TextKind::Name, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prose_keeps_tabs_and_newlines_and_turns_carriage_returns_into_newlines() {
        assert_eq!(clean("text", "a\tb\r\nc\rd\n", TextKind::Prose, 100), Ok("a\tb\nc\nd".into()));
        assert!(clean("label", "a\nb", TextKind::Name, 100).is_err());
        assert!(clean("label", "a\tb", TextKind::Name, 100).is_err());
    }

    #[test]
    fn names_refuse_bidi_controls_and_invisible_characters_prose_keeps_them() {
        for bad in ["scan\u{202E}lts.exe", "a\u{2066}b", "a\u{200B}b", "a\u{FEFF}b", "a\u{200D}b"] {
            assert!(clean("name", bad, TextKind::Name, 100).is_err(), "{bad:?}");
        }
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(clean("text", family, TextKind::Prose, 100).as_deref(), Ok(family));
    }

    #[test]
    fn text_is_normalised_to_nfc_and_trimmed_and_measured_after() {
        // "é" as e + combining acute becomes the single code point.
        assert_eq!(clean("label", "  Jose\u{301} ", TextKind::Name, 4), Ok("José".into()));
        assert!(clean("label", "   ", TextKind::Name, 4).is_err());
        assert!(clean("label", "abcde", TextKind::Name, 4).is_err());
    }

    #[test]
    fn errors_name_the_field_and_the_character() {
        let e = clean("label", "a\u{0}", TextKind::Name, 10).err().map(|e| e.0);
        assert_eq!(e.as_deref(), Some("label contains the control character U+0000, which cannot be stored"));
    }
}
