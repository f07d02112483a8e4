use serde::{Deserialize, Serialize};

use super::ids::{CaseId, OrgId, UserId};

/// Declares a snake_case string enum with `as_str`, `FromStr` and a list of every value.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS,
            strum::IntoStaticStr, strum::EnumString, strum::EnumIter,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The snake_case wire name.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// A member's role in an organisation (DESIGN §2).
    Role {
        /// Prescribes cases; sees own cases only.
        Doctor,
        /// Coordinates the clinic's cases.
        ClinicAdmin,
        /// Works on cases routed to the lab.
        LabTech,
        /// Runs the lab.
        LabAdmin,
        /// Owns the organisation: users, audit, export, closure.
        Owner,
        /// Reads the audit log only.
        Auditor,
    }
);

impl Role {
    /// Whether this role exists in organisations of `kind`.
    pub fn fits(self, kind: OrgKind) -> bool {
        match self {
            Role::Doctor | Role::ClinicAdmin => kind == OrgKind::Clinic,
            Role::LabTech | Role::LabAdmin => kind == OrgKind::Lab,
            Role::Owner | Role::Auditor => true,
        }
    }
}

wire_enum!(
    /// The kind of an organisation.
    OrgKind {
        /// A dental clinic.
        Clinic,
        /// A dental lab.
        Lab,
    }
);

wire_enum!(
    /// The two separate sign-in environments.
    Portal {
        /// For members of clinics.
        Clinic,
        /// For members of labs.
        Lab,
    }
);

impl Portal {
    /// The organisation kind whose members sign in on this portal.
    pub fn org_kind(self) -> OrgKind {
        match self {
            Portal::Clinic => OrgKind::Clinic,
            Portal::Lab => OrgKind::Lab,
        }
    }
}

wire_enum!(
    /// Where a case is in its life.
    CaseStatus {
        /// Being written by the doctor; not visible to the lab.
        Draft,
        /// Sent to the lab.
        Submitted,
        /// The lab has received it.
        Received,
        /// The lab is designing.
        InDesign,
        /// A design waits for the doctor's approval.
        AwaitingApproval,
        /// The doctor approved the design.
        Approved,
        /// The lab is making it.
        InProduction,
        /// On its way to the clinic.
        Shipped,
        /// Arrived at the clinic.
        Delivered,
        /// Finished.
        Closed,
        /// Paused; resumes to the status it had.
        OnHold,
        /// The clinic asked for a remake.
        RemakeRequested,
        /// Cancelled.
        Cancelled,
    }
);

impl CaseStatus {
    /// How far along production is, for the at-risk rule and the board's column order.
    /// `None` for statuses outside the main line (on hold, remake, cancelled).
    pub fn progress(self) -> Option<u8> {
        use CaseStatus::*;
        Some(match self {
            Draft => 0,
            Submitted => 1,
            Received => 2,
            InDesign => 3,
            AwaitingApproval => 4,
            Approved => 5,
            InProduction => 6,
            Shipped => 7,
            Delivered => 8,
            Closed => 9,
            OnHold | RemakeRequested | Cancelled => return None,
        })
    }

    /// Whether the case is finished (no more work expected).
    pub fn is_terminal(self) -> bool {
        matches!(self, CaseStatus::Closed | CaseStatus::Cancelled)
    }
}

wire_enum!(
    /// What a file is for.
    FileKind {
        /// An intraoral or model scan (STL, PLY, OBJ).
        Scan,
        /// A photo (shade photo, clinical photo).
        Photo,
        /// A design file from the lab; approvals are requested on these.
        Design,
        /// A recorded voice note.
        VoiceNote,
        /// Any other document (PDF…).
        Document,
    }
);

wire_enum!(
    /// What a per-case grant lets its holder do on the case.
    Capability {
        /// See the case: its events, chat, files, Rx and approvals.
        View,
        /// Post, edit and delete their own chat messages; mark read.
        Chat,
        /// Add files.
        Upload,
        /// Edit and sign the Rx, decide lab proposals.
        EditRx,
        /// Approve or reject designs.
        Approve,
        /// Give and take grants on the case (only capabilities they hold themselves).
        Manage,
    }
);

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 6] = [
        Capability::View,
        Capability::Chat,
        Capability::Upload,
        Capability::EditRx,
        Capability::Approve,
        Capability::Manage,
    ];
}

wire_enum!(
    /// A doctor's decision on an approval request.
    Decision {
        /// The design is approved.
        Approve,
        /// The design is rejected.
        Reject,
    }
);

wire_enum!(
    /// The state of an approval request.
    ApprovalStatus {
        /// Waiting for the doctor.
        Pending,
        /// Approved by the doctor.
        Approved,
        /// Rejected by the doctor.
        Rejected,
        /// Voided by a later change to the design file or the Rx.
        Voided,
    }
);

/// One change to one Rx field. `base_version` is the version of the field the edit was based on
/// (0 for a field never set); `value: null` clears the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct RxChange {
    /// Field path: `notes`, `due_date`, `shade_system`, or `teeth.<FDI>.<attribute>`.
    pub field: String,
    /// The field version the client saw.
    pub base_version: u64,
    /// The new value, or null to clear.
    pub value: Option<String>,
}

/// One Rx field as applied by an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct RxFieldValue {
    /// Field path.
    pub field: String,
    /// The new value, or null when cleared.
    pub value: Option<String>,
}

/// A case as shown on a status board and in case lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct CaseSummary {
    /// The case.
    pub case_id: CaseId,
    /// De-identified label.
    pub label: String,
    /// Current status.
    pub status: CaseStatus,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Due soon (or overdue) and not far enough along: `days_left < days_needed`.
    pub at_risk: bool,
    /// Days of lead time the case still needs at its status (the at-risk rule); null for
    /// delivered and finished cases.
    #[serde(default)]
    pub days_needed: Option<i64>,
    /// Days from today (UTC) to the due date, negative once overdue; null without a due date.
    #[serde(default)]
    pub days_left: Option<i64>,
    /// Last activity, milliseconds since the Unix epoch.
    pub last_activity: i64,
    /// The prescribing doctor.
    pub doctor_id: UserId,
    /// The clinic.
    pub clinic_id: OrgId,
    /// The lab the case is routed to.
    pub lab_id: Option<OrgId>,
    /// The case's latest event sequence number.
    pub seq: u64,
}
