//! The Digital Rx: which fields exist and which values they accept (DESIGN §2).
//!
//! Fields are addressed by path: case-level `notes`, or `teeth.<FDI>.<attribute>` with FDI
//! notation for permanent teeth (quadrants 1–4, teeth 1–8: 11–18, 21–28, 31–38, 41–48), always
//! written as two digits: a field has exactly one name (see [`tooth_number`]).

use articula_protocol::{ErrorCode, FileId};

use crate::error::CommandError;

/// Restoration types.
pub const RESTORATIONS: &[&str] = &[
    "crown",
    "bridge_abutment",
    "bridge_pontic",
    "veneer",
    "inlay",
    "onlay",
    "implant_crown",
    "implant_abutment",
    "denture",
    "partial_denture",
    "temporary",
    "night_guard",
];

/// Materials.
pub const MATERIALS: &[&str] = &[
    "zirconia",
    "lithium_disilicate",
    "feldspathic",
    "pfm",
    "full_cast_gold",
    "cocr",
    "titanium",
    "composite",
    "pmma",
    "acrylic",
];

/// VITA classical shades (A1–D4, plus the bleach shades).
pub const VITA_CLASSICAL: &[&str] = &[
    "A1", "A2", "A3", "A3.5", "A4", "B1", "B2", "B3", "B4", "C1", "C2", "C3", "C4", "D2", "D3", "D4", "BL1",
    "BL2", "BL3", "BL4",
];

/// VITA 3D-Master shades.
pub const VITA_3D_MASTER: &[&str] = &[
    "0M1", "0M2", "0M3", "1M1", "1M2", "2L1.5", "2L2.5", "2M1", "2M2", "2M3", "2R1.5", "2R2.5", "3L1.5",
    "3L2.5", "3M1", "3M2", "3M3", "3R1.5", "3R2.5", "4L1.5", "4L2.5", "4M1", "4M2", "4M3", "4R1.5", "4R2.5",
    "5M1", "5M2", "5M3",
];

/// Margin designs.
pub const MARGINS: &[&str] =
    &["chamfer", "deep_chamfer", "shoulder", "shoulder_bevel", "knife_edge", "feather_edge"];

/// Occlusal contact.
pub const OCCLUSIONS: &[&str] = &["light", "medium", "heavy", "no_contact"];

/// Per-tooth attributes.
pub const TOOTH_ATTRIBUTES: &[&str] = &["restoration", "material", "shade", "margin", "occlusion", "notes"];

/// Longest free-text note.
pub const MAX_NOTE_CHARS: usize = 2000;

/// Most fields changed by one command.
pub const MAX_CHANGES: usize = 64;

/// Whether `n` is a permanent tooth in FDI notation.
pub fn is_fdi_tooth(n: u8) -> bool {
    (1..=4).contains(&(n / 10)) && (1..=8).contains(&(n % 10))
}

/// The tooth a path segment names, in its canonical spelling only: exactly two ASCII digits.
///
/// A field's name is its identity (its version, its history, what a proposal changes), so one
/// tooth must have one name. `u8::from_str` also reads `011` and `+11` as 11: accepting them
/// would make `teeth.011.shade` a second shade of tooth 11 that the chart never shows. Other
/// spellings are refused (`invalid_rx`, like `teeth.19`), not rewritten: clients send back the
/// names they were given, so a different spelling is a client bug to surface, and a rewrite
/// would answer with a field name the client never sent.
pub fn tooth_number(segment: &str) -> Option<u8> {
    match segment.as_bytes() {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some((a - b'0') * 10 + (b - b'0')).filter(|t| is_fdi_tooth(*t)),
        _ => None,
    }
}

fn invalid(msg: String) -> CommandError {
    CommandError::new(ErrorCode::InvalidRx, msg)
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), CommandError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(format!("`{value}` is not a valid value for {field}")))
    }
}

fn note(field: &str, value: &str) -> Result<(), CommandError> {
    if value.chars().count() > MAX_NOTE_CHARS {
        return Err(invalid(format!("{field} is longer than {MAX_NOTE_CHARS} characters")));
    }
    Ok(())
}

/// The file an `attachments.<file id>` field names, in the canonical spelling only (lowercase,
/// hyphenated), so that one file cannot be attached under several field names.
pub fn attachment(id: &str) -> Option<FileId> {
    id.parse::<FileId>().ok().filter(|f| f.to_string() == id)
}

/// Checks that `field` exists and `value` fits it. `None` (clearing) fits every field.
pub fn validate(field: &str, value: Option<&str>) -> Result<(), CommandError> {
    let parts: Vec<&str> = field.split('.').collect();
    match parts.as_slice() {
        ["notes"] => value.map_or(Ok(()), |v| note(field, v)),
        // A file of the case attached to the Rx (a shade photo, a scan), with a caption; clearing
        // detaches it. Whether the file belongs to the case is checked by the case actor.
        ["attachments", id] => {
            attachment(id).ok_or_else(|| invalid(format!("`{id}` is not a file id")))?;
            value.map_or(Ok(()), |v| note(field, v))
        }
        ["teeth", tooth, attribute] => {
            tooth_number(tooth)
                .ok_or_else(|| invalid(format!("`{tooth}` is not a tooth in FDI notation (11–48)")))?;
            let Some(v) = value else {
                return if TOOTH_ATTRIBUTES.contains(attribute) {
                    Ok(())
                } else {
                    Err(invalid(format!("unknown tooth attribute `{attribute}`")))
                };
            };
            match *attribute {
                "restoration" => one_of(field, v, RESTORATIONS),
                "material" => one_of(field, v, MATERIALS),
                "shade" => {
                    if VITA_CLASSICAL.contains(&v) || VITA_3D_MASTER.contains(&v) {
                        Ok(())
                    } else {
                        Err(invalid(format!("`{v}` is not a VITA classical or 3D-Master shade")))
                    }
                }
                "margin" => one_of(field, v, MARGINS),
                "occlusion" => one_of(field, v, OCCLUSIONS),
                "notes" => note(field, v),
                other => Err(invalid(format!("unknown tooth attribute `{other}`"))),
            }
        }
        _ => Err(invalid(format!("unknown Rx field `{field}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdi_accepts_permanent_teeth_only() {
        for t in [11, 18, 21, 28, 31, 38, 41, 48] {
            assert!(is_fdi_tooth(t), "{t}");
        }
        for t in [10, 19, 20, 29, 49, 51, 85, 0, 99] {
            assert!(!is_fdi_tooth(t), "{t}");
        }
    }

    #[test]
    fn values_are_checked_per_attribute() {
        assert!(validate("teeth.11.shade", Some("A2")).is_ok());
        assert!(validate("teeth.11.shade", Some("3M2")).is_ok());
        assert!(validate("teeth.11.shade", Some("Z9")).is_err());
        assert!(validate("teeth.19.shade", Some("A2")).is_err());
        assert!(validate("teeth.11.material", Some("zirconia")).is_ok());
        assert!(validate("teeth.11.material", Some("cheese")).is_err());
        assert!(validate("teeth.11.colour", None).is_err());
        assert!(validate("teeth.11.shade", None).is_ok());
        assert!(validate("notes", Some("x")).is_ok());
        let file = FileId::new();
        assert!(validate(&format!("attachments.{file}"), Some("shade photo, 11")).is_ok());
        assert!(validate(&format!("attachments.{file}"), None).is_ok());
        assert!(validate("attachments.photo", Some("x")).is_err());
        assert!(validate(&format!("attachments.{file}.x"), Some("x")).is_err());
        let upper = file.to_string().to_uppercase();
        assert!(validate(&format!("attachments.{upper}"), Some("x")).is_err());
        assert!(validate(&format!("attachments.{}", file.to_string().replace('-', "")), Some("x")).is_err());
        assert!(validate("patient_name", Some("x")).is_err());
        // One tooth, one field name: other spellings of `teeth.11.shade` are refused.
        for other in [
            "teeth.011.shade",
            "teeth.+11.shade",
            "teeth.1.shade",
            " teeth.11.shade",
            "teeth.11.shade ",
            "teeth. 11.shade",
            "teeth.11 .shade",
            "Teeth.11.shade",
            "TEETH.11.SHADE",
            "teeth.11.Shade",
            "teeth..11.shade",
            "teeth.11..shade",
            "teeth.11.shade.",
            ".teeth.11.shade",
            "teeth.\u{FF11}\u{FF11}.shade",
            "teeth.11\u{200B}.shade",
        ] {
            assert!(validate(other, Some("A2")).is_err(), "{other:?}");
            assert!(validate(other, None).is_err(), "{other:?}");
        }
        assert_eq!(tooth_number("11"), Some(11));
        assert_eq!(tooth_number("48"), Some(48));
        assert!(validate("notes", Some(&"x".repeat(MAX_NOTE_CHARS + 1))).is_err());
    }
}
