//! Uploaded files: what they are, decided from their bytes ([`sniff`]), and whether they are safe
//! to keep ([`scan`]). Both read an upload as it streams through, chunk by chunk, and hold only a
//! few KiB whatever its size.

pub mod scan;
pub mod sniff;

pub use scan::{ScanError, ScanSession, Scanner, Verdict};
pub use sniff::{FileType, Refusal, Sniffer};
