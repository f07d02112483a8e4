//! Ids: UUIDs that travel as their canonical string (lowercase, hyphenated — the form the REST
//! API returns) in **every** format.
//!
//! `uuid::Uuid`'s own serde impls pick the form by `is_human_readable()`: a string for JSON, but
//! 16 raw bytes (a MessagePack `bin`) for rmp-serde. That made the MessagePack codec carry ids a
//! client cannot compare with the REST API's, and refuse the string ids clients got from it.
//! The impls below ignore `is_human_readable()`, so both codecs carry the same string.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Writes an id as its canonical string, whatever the format.
fn serialize_uuid<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
}

/// Reads an id from a string, or from the 16-byte form older MessagePack peers wrote.
fn deserialize_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    d.deserialize_str(IdVisitor)
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id: a UUID string such as \"01920000-0000-7000-8000-000000000001\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Uuid, E> {
        // The same spellings the REST API accepts in its paths and bodies (`Uuid::parse_str`);
        // answers always use the canonical one.
        Uuid::parse_str(v).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    /// The legacy MessagePack form: a `bin` of exactly 16 bytes. Still accepted on input because
    /// v1 changes are additive only (protocol/README.md, Versioning): until this fix the server
    /// *sent* ids in this form, so a MessagePack client that echoes back an id it received
    /// (a `message_id` from an event, to edit the message) must keep working. It cannot be
    /// mistaken for anything else (no other protocol field is binary), and nothing writes it
    /// any more. JSON has no binary values, so JSON input is unchanged: strings only.
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Uuid, E> {
        Uuid::from_slice(v).map_err(|_| E::invalid_length(v.len(), &"a string id, or 16 bytes (legacy)"))
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ts_rs::TS)]
        #[ts(type = "string")]
        pub struct $name(#[ts(skip)] pub Uuid);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_uuid(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_uuid(d).map(Self)
            }
        }

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// A patient case.
    CaseId
);
uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// An organisation (clinic or lab).
    OrgId
);
uuid_id!(
    /// A chat message.
    MessageId
);
uuid_id!(
    /// A stored file.
    FileId
);
uuid_id!(
    /// An approval request.
    ApprovalId
);
uuid_id!(
    /// A lab's proposal to change the Rx.
    ProposalId
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;

    const TEXT: &str = "01920000-0000-7000-8000-000000000001";

    fn case() -> CaseId {
        TEXT.parse().unwrap()
    }

    #[test]
    fn ids_are_the_canonical_string_in_both_codecs() {
        assert_eq!(serde_json::to_string(&case()).unwrap(), format!("\"{TEXT}\""));
        let mp = rmp_serde::to_vec_named(&case()).unwrap();
        // str 8 (0xd9), 36 bytes, then the text: not a 16-byte bin.
        assert_eq!(mp[..2], [0xd9, 36]);
        assert_eq!(&mp[2..], TEXT.as_bytes());
        assert_eq!(rmpv::decode::read_value(&mut &mp[..]).unwrap(), rmpv::Value::from(TEXT));
    }

    #[test]
    fn msgpack_reads_the_string_ids_the_rest_api_gives() {
        let mp = rmp_serde::to_vec(TEXT).unwrap();
        assert_eq!(rmp_serde::from_slice::<CaseId>(&mp).unwrap(), case());
        // The same through the server's strict client-frame decoder.
        let frame = rmpv::Value::Map(vec![
            ("v".into(), 1.into()),
            ("type".into(), "subscribe".into()),
            ("id".into(), "s1".into()),
            ("data".into(), rmpv::Value::Map(vec![("case_id".into(), TEXT.into())])),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &frame).unwrap();
        let msg = Codec::MsgPack.decode_client(&bytes).unwrap();
        assert_eq!(msg.body.case_id(), Some(case()));
    }

    #[test]
    fn msgpack_still_reads_the_legacy_16_byte_form() {
        let legacy = rmp_serde::to_vec(&serde_bytes_like(case().0.as_bytes())).unwrap();
        assert_eq!(legacy[..2], [0xc4, 16]);
        assert_eq!(rmp_serde::from_slice::<CaseId>(&legacy).unwrap(), case());
        let short = rmp_serde::to_vec(&serde_bytes_like(&[1u8; 15])).unwrap();
        assert!(rmp_serde::from_slice::<CaseId>(&short).is_err());
    }

    #[test]
    fn spellings_are_read_as_rest_reads_them_and_written_canonically() {
        let upper: CaseId = serde_json::from_str(&format!("\"{}\"", TEXT.to_uppercase())).unwrap();
        assert_eq!(upper, case());
        assert_eq!(serde_json::to_string(&upper).unwrap(), format!("\"{TEXT}\""));
        for bad in ["\"nope\"", "5", "null", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]"] {
            assert!(serde_json::from_str::<CaseId>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<CaseId>("\"nope\"").unwrap_err().to_string();
        assert!(err.contains("UUID string"), "{err}");
    }

    /// A value rmp-serde writes as `bin`.
    fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
        struct Bin<'a>(&'a [u8]);
        impl Serialize for Bin<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bin(b)
    }
}
