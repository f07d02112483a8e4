//! Who may do what on a case (DESIGN §2's role table), as pure functions.

use std::sync::Arc;

use articula_protocol::{Capability, CaseStatus, ErrorCode, EventData, OrgId, Role, UserId};

use crate::error::CommandError;

/// Who is asking: a user and their active memberships, as loaded when their socket
/// authenticated or their request arrived. The case actor computes the user's relation to the
/// case from these and the case's *current* state at every command, so no access decision
/// outlives the event that changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// Active memberships: organisation and role.
    pub memberships: Arc<[(OrgId, Role)]>,
    /// The server acting on the user's behalf (a transcript of their voice note), not the user.
    pub system: bool,
    /// The address the user's request or socket comes from (for the audit log).
    pub ip: Option<Arc<str>>,
}

impl Principal {
    /// A user with these memberships.
    pub fn new(user_id: UserId, memberships: impl IntoIterator<Item = (OrgId, Role)>) -> Self {
        Self { user_id, memberships: memberships.into_iter().collect(), system: false, ip: None }
    }

    /// The same, coming from `ip`.
    pub fn from_ip(mut self, ip: impl Into<Arc<str>>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// The server, acting for `user_id` (no memberships of its own).
    pub fn system(user_id: UserId) -> Self {
        Self { user_id, memberships: Arc::from(Vec::new()), system: true, ip: None }
    }

    /// Whether the user holds `role` in `org`.
    pub fn has(&self, org: OrgId, role: Role) -> bool {
        self.memberships.iter().any(|(o, r)| *o == org && *r == role)
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Caps(u8);

impl Caps {
    fn bit(c: Capability) -> u8 {
        match c {
            Capability::View => 1,
            Capability::Chat => 2,
            Capability::Upload => 4,
            Capability::EditRx => 8,
            Capability::Approve => 16,
            Capability::Manage => 32,
        }
    }

    /// These capabilities (`view` is implied by any other).
    pub fn of(list: &[Capability]) -> Self {
        let bits = list.iter().fold(0, |b, c| b | Self::bit(*c));
        Self(if bits == 0 { 0 } else { bits | 1 })
    }

    /// Whether it holds `c`.
    pub fn has(self, c: Capability) -> bool {
        self.0 & Self::bit(c) != 0
    }

    /// Whether it holds every capability of `other`.
    pub fn covers(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// As a list, in a fixed order.
    pub fn list(self) -> Vec<Capability> {
        use Capability::*;
        [View, Chat, Upload, EditRx, Approve, Manage].into_iter().filter(|c| self.has(*c)).collect()
    }

    /// No capability.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A per-case grant as the visibility rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantRule {
    /// Who holds it.
    pub user_id: UserId,
    /// What it allows.
    pub caps: Caps,
    /// Until when (ms); `None`: until revoked.
    pub until: Option<i64>,
    /// Read access for a support account.
    pub support: bool,
}

impl GrantRule {
    /// Whether it is in force at `now`.
    pub fn live(&self, now: i64) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

/// What decides who may see a case: its clinic, doctor and lab, whether it was submitted
/// (a draft, also a draft put on hold, is the clinic's own), and its per-case grants. Carried by
/// every event frame as it is after the event, so sockets re-evaluate their access at the very
/// event that changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visibility {
    /// The clinic.
    pub clinic_id: OrgId,
    /// The case's doctor.
    pub doctor_id: UserId,
    /// The lab it is routed to.
    pub lab_id: Option<OrgId>,
    /// No longer a draft (its effective status, looking through `on_hold`).
    pub submitted: bool,
    /// Per-case grants (their end times are checked when access is computed).
    pub grants: Arc<[GrantRule]>,
}

impl Visibility {
    /// Whether the lab sees the case.
    pub fn lab_visible(&self) -> bool {
        self.lab_id.is_some() && self.submitted
    }

    /// The earliest end of a grant in force at `now`.
    pub fn next_expiry(&self, now: i64) -> Option<i64> {
        self.grants.iter().filter(|g| g.live(now)).filter_map(|g| g.until).min()
    }

    /// The visibility after `event`: the same rule the case state applies, for readers that
    /// only have the events (catch-up from the log).
    pub fn after(mut self, event: &EventData) -> Self {
        let set_grant = |v: &mut Self, user: UserId, g: Option<GrantRule>| {
            let mut list: Vec<GrantRule> = v.grants.iter().filter(|x| x.user_id != user).copied().collect();
            list.extend(g);
            list.sort_by_key(|x| x.user_id);
            v.grants = list.into();
        };
        match event {
            EventData::GrantGiven { user_id, capabilities, until, support } => {
                let g = GrantRule {
                    user_id: *user_id,
                    caps: Caps::of(capabilities),
                    until: *until,
                    support: *support,
                };
                set_grant(&mut self, *user_id, Some(g));
            }
            EventData::GrantRevoked { user_id } | EventData::GrantExpired { user_id } => {
                set_grant(&mut self, *user_id, None);
            }
            EventData::CaseUpdated { lab_id: Some(lab), .. } => self.lab_id = *lab,
            EventData::StatusChanged { from, to, .. } => {
                self.submitted =
                    !(*to == CaseStatus::Draft || (*to == CaseStatus::OnHold && *from == CaseStatus::Draft));
            }
            _ => {}
        }
        self
    }
}

/// A user's relation to one case: their roles towards it, and what a per-case grant adds. A
/// user can hold several relations at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CaseAccess {
    /// The user.
    pub user_id: UserId,
    /// The case's own doctor.
    pub doctor: bool,
    /// A clinic admin of the case's clinic.
    pub clinic_admin: bool,
    /// A lab technician of the case's lab.
    pub lab_tech: bool,
    /// A lab admin of the case's lab.
    pub lab_admin: bool,
    /// An owner of the case's clinic (manages grants; sees no content by that alone).
    pub clinic_owner: bool,
    /// What a grant in force adds.
    pub granted: Caps,
}

impl CaseAccess {
    /// The relation of `who` to a case that is as `vis` says.
    pub fn of(who: &Principal, vis: &Visibility) -> Self {
        Self::at(who, vis, crate::clock::now_ms())
    }

    /// The same, at time `now` (grants end at their `until`).
    pub fn at(who: &Principal, vis: &Visibility, now: i64) -> Self {
        let lab = vis.lab_id.filter(|_| vis.lab_visible());
        let granted = vis
            .grants
            .iter()
            .find(|g| g.user_id == who.user_id && g.live(now))
            .map_or(Caps::default(), |g| g.caps);
        Self {
            user_id: who.user_id,
            doctor: who.user_id == vis.doctor_id && who.has(vis.clinic_id, Role::Doctor),
            clinic_admin: who.has(vis.clinic_id, Role::ClinicAdmin),
            lab_tech: lab.is_some_and(|l| who.has(l, Role::LabTech)),
            lab_admin: lab.is_some_and(|l| who.has(l, Role::LabAdmin)),
            clinic_owner: who.has(vis.clinic_id, Role::Owner),
            granted,
        }
    }

    /// A role that sees the case (not counting grants).
    fn member(&self) -> bool {
        self.doctor || self.clinic_admin || self.lab_tech || self.lab_admin
    }

    /// Can see the case at all.
    pub fn any(&self) -> bool {
        self.member() || self.granted.has(Capability::View)
    }

    /// Acts for the clinic (doctor of the case or clinic admin).
    pub fn clinic_side(&self) -> bool {
        self.doctor || self.clinic_admin
    }

    /// Acts for the lab.
    pub fn lab_side(&self) -> bool {
        self.lab_tech || self.lab_admin
    }

    /// May chat and mark read: every role that sees the case, or a grant of `chat`.
    pub fn may_chat(&self) -> bool {
        self.member() || self.granted.has(Capability::Chat)
    }

    /// May add files: every role that sees the case, or a grant of `upload`.
    pub fn may_upload(&self) -> bool {
        self.member() || self.granted.has(Capability::Upload)
    }

    /// May edit and sign the Rx and decide proposals: the case's doctor, or a grant of `edit_rx`.
    pub fn may_prescribe(&self) -> bool {
        self.doctor || self.granted.has(Capability::EditRx)
    }

    /// May approve or reject designs: the case's doctor, or a grant of `approve`.
    pub fn may_approve(&self) -> bool {
        self.doctor || self.granted.has(Capability::Approve)
    }

    /// May give and take grants: the case's doctor, an owner of its clinic, or a grant of
    /// `manage` (then only capabilities they hold).
    pub fn may_manage(&self) -> bool {
        self.doctor || self.clinic_owner || self.granted.has(Capability::Manage)
    }

    /// The capabilities this caller may pass on.
    pub fn grantable(&self) -> Caps {
        if self.doctor || self.clinic_owner {
            return Caps::of(&Capability::ALL);
        }
        let mut have = vec![Capability::View];
        for (c, yes) in [
            (Capability::Chat, self.may_chat()),
            (Capability::Upload, self.may_upload()),
            (Capability::EditRx, self.may_prescribe()),
            (Capability::Approve, self.may_approve()),
            (Capability::Manage, self.may_manage()),
        ] {
            if yes {
                have.push(c);
            }
        }
        Caps::of(&have)
    }

    /// Refuses unless `allowed`.
    pub fn require(&self, allowed: bool, what: &str) -> Result<(), CommandError> {
        if allowed { Ok(()) } else { Err(CommandError::forbidden(format!("your role may not {what}"))) }
    }
}

/// Whether `access` may route a case in `status` to another lab: clinic admins route drafts and
/// submitted cases, a doctor chooses the lab of their own draft (the case actor's `update_case`
/// decides with the same rule and says why it refused).
pub fn may_route(access: &CaseAccess, status: CaseStatus) -> bool {
    let role = access.clinic_admin || (access.doctor && status == CaseStatus::Draft);
    role && matches!(status, CaseStatus::Draft | CaseStatus::Submitted)
}

/// Every status, in workflow order (what [`allowed_transitions`] tries).
pub const STATUS_ORDER: [CaseStatus; 13] = [
    CaseStatus::Draft,
    CaseStatus::Submitted,
    CaseStatus::Received,
    CaseStatus::InDesign,
    CaseStatus::AwaitingApproval,
    CaseStatus::Approved,
    CaseStatus::InProduction,
    CaseStatus::Shipped,
    CaseStatus::Delivered,
    CaseStatus::Closed,
    CaseStatus::RemakeRequested,
    CaseStatus::OnHold,
    CaseStatus::Cancelled,
];

/// The statuses `access` may move a case to now: exactly those [`check_transition`] accepts,
/// so that clients offer what the server would do and nothing else.
pub fn allowed_transitions(
    access: &CaseAccess,
    from: CaseStatus,
    before_hold: Option<CaseStatus>,
    has_lab: bool,
) -> Vec<CaseStatus> {
    STATUS_ORDER
        .into_iter()
        .filter(|to| check_transition(access, from, *to, before_hold, has_lab).is_ok())
        .collect()
}

/// Which side may make a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Clinic,
    Lab,
    Either,
}

/// The status workflow: `(from, to, side)`. On hold and cancellation are handled by
/// [`check_transition`] since they apply from many statuses.
const TRANSITIONS: &[(CaseStatus, CaseStatus, Side)] = {
    use CaseStatus::*;
    &[
        (Draft, Submitted, Side::Clinic),
        (Submitted, Received, Side::Lab),
        (Received, InDesign, Side::Lab),
        (AwaitingApproval, InDesign, Side::Lab),
        (Received, InProduction, Side::Lab),
        (InDesign, InProduction, Side::Lab),
        (Approved, InProduction, Side::Lab),
        (InProduction, Shipped, Side::Lab),
        (Shipped, Delivered, Side::Clinic),
        (Delivered, Closed, Side::Clinic),
        (Delivered, RemakeRequested, Side::Clinic),
        (RemakeRequested, Received, Side::Lab),
    ]
};

/// Checks a `set_status` request against the workflow and the caller's side.
///
/// `before_hold` is the status a case on hold returns to. `approved` is reached only through
/// `decide_approval`, never set directly.
pub fn check_transition(
    access: &CaseAccess,
    from: CaseStatus,
    to: CaseStatus,
    before_hold: Option<CaseStatus>,
    has_lab: bool,
) -> Result<(), CommandError> {
    use CaseStatus::*;
    let invalid = |why: &str| {
        Err(CommandError::new(
            ErrorCode::InvalidTransition,
            format!("cannot move from {from} to {to}: {why}"),
        ))
    };
    if from == to {
        return invalid("the case already has this status");
    }
    if to == Approved {
        return invalid("designs are approved with decide_approval");
    }
    let side = if to == OnHold {
        if from.is_terminal() || from == OnHold {
            return invalid("a finished case cannot be put on hold");
        }
        Side::Either
    } else if from == OnHold {
        if Some(to) != before_hold {
            return invalid("a case on hold resumes to the status it had");
        }
        Side::Either
    } else if to == Cancelled {
        if !matches!(from, Draft | Submitted | Received | InDesign | AwaitingApproval | Approved) {
            return invalid("only a case not yet in production can be cancelled");
        }
        Side::Clinic
    } else if to == AwaitingApproval {
        return invalid("request an approval of a design file instead");
    } else {
        match TRANSITIONS.iter().find(|(f, t, _)| *f == from && *t == to) {
            Some((_, _, side)) => *side,
            None => return invalid("not a step of the workflow"),
        }
    };
    let allowed = match side {
        Side::Clinic => access.clinic_side(),
        Side::Lab => access.lab_side(),
        Side::Either => access.clinic_side() || access.lab_side(),
    };
    if !allowed {
        return Err(CommandError::new(
            ErrorCode::InvalidTransition,
            format!("your role may not move a case from {from} to {to}"),
        ));
    }
    if from == Draft && to == Submitted && !has_lab {
        return invalid("route the case to a lab first");
    }
    Ok(())
}

/// Working days of lead time a case still needs before its due date, by status — the at-risk
/// rule of the status board: a case is at risk when fewer days remain than it needs.
pub fn lead_days(status: CaseStatus, before_hold: Option<CaseStatus>) -> Option<i64> {
    use CaseStatus::*;
    let status = if status == OnHold { before_hold.unwrap_or(Received) } else { status };
    Some(match status {
        Draft => 7,
        Submitted => 6,
        Received | RemakeRequested => 5,
        InDesign => 4,
        AwaitingApproval | Approved => 3,
        InProduction => 2,
        Shipped => 1,
        Delivered | Closed | Cancelled | OnHold => return None,
    })
}

/// Days from `today` to the due date (0 on the day, negative once overdue); `None` without one.
pub fn days_left(due_date: Option<&str>, today: time::Date) -> Option<i64> {
    due_date.and_then(crate::clock::parse_date).map(|due| (due - today).whole_days())
}

/// Whether a case with this status and due date is at risk on `today`: fewer days left
/// ([`days_left`]) than the status still needs ([`lead_days`]).
pub fn at_risk(
    status: CaseStatus,
    before_hold: Option<CaseStatus>,
    due_date: Option<&str>,
    today: time::Date,
) -> bool {
    match (lead_days(status, before_hold), days_left(due_date, today)) {
        (Some(lead), Some(left)) => left < lead,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseStatus::*;

    fn doctor() -> CaseAccess {
        CaseAccess { doctor: true, ..Default::default() }
    }
    fn admin() -> CaseAccess {
        CaseAccess { clinic_admin: true, ..Default::default() }
    }
    fn tech() -> CaseAccess {
        CaseAccess { lab_tech: true, ..Default::default() }
    }

    #[test]
    fn the_lab_moves_production_and_the_clinic_receives() {
        assert!(check_transition(&tech(), Submitted, Received, None, true).is_ok());
        assert!(check_transition(&doctor(), Submitted, Received, None, true).is_err());
        assert!(check_transition(&tech(), InProduction, Shipped, None, true).is_ok());
        assert!(check_transition(&admin(), Shipped, Delivered, None, true).is_ok());
        assert!(check_transition(&tech(), Shipped, Delivered, None, true).is_err());
    }

    #[test]
    fn approval_is_never_set_directly() {
        let err = check_transition(&doctor(), AwaitingApproval, Approved, None, true).err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::InvalidTransition));
    }

    #[test]
    fn submitting_needs_a_lab() {
        assert!(check_transition(&doctor(), Draft, Submitted, None, false).is_err());
        assert!(check_transition(&doctor(), Draft, Submitted, None, true).is_ok());
    }

    #[test]
    fn hold_resumes_to_the_previous_status_only() {
        assert!(check_transition(&tech(), InDesign, OnHold, None, true).is_ok());
        assert!(check_transition(&tech(), OnHold, InDesign, Some(InDesign), true).is_ok());
        assert!(check_transition(&tech(), OnHold, Shipped, Some(InDesign), true).is_err());
        assert!(check_transition(&tech(), Closed, OnHold, None, true).is_err());
    }

    #[test]
    fn only_the_clinic_cancels_and_not_in_production() {
        assert!(check_transition(&admin(), InDesign, Cancelled, None, true).is_ok());
        assert!(check_transition(&tech(), InDesign, Cancelled, None, true).is_err());
        assert!(check_transition(&admin(), InProduction, Cancelled, None, true).is_err());
    }

    #[test]
    fn the_allowed_list_offers_each_side_only_its_own_steps() {
        let d = doctor();
        let t = tech();
        assert_eq!(allowed_transitions(&d, Draft, None, true), vec![Submitted, OnHold, Cancelled]);
        assert_eq!(allowed_transitions(&d, Draft, None, false), vec![OnHold, Cancelled]);
        assert_eq!(allowed_transitions(&t, Submitted, None, true), vec![Received, OnHold]);
        assert_eq!(allowed_transitions(&t, InProduction, None, true), vec![Shipped, OnHold]);
        assert_eq!(allowed_transitions(&d, InProduction, None, true), vec![OnHold]);
        assert_eq!(allowed_transitions(&d, Shipped, None, true), vec![Delivered, OnHold]);
        assert_eq!(allowed_transitions(&t, OnHold, Some(InDesign), true), vec![InDesign]);
        assert!(allowed_transitions(&d, Closed, None, true).is_empty());
        assert!(!allowed_transitions(&d, AwaitingApproval, None, true).contains(&Approved));
        assert!(!allowed_transitions(&t, InDesign, None, true).contains(&AwaitingApproval));
        assert!(allowed_transitions(&t, AwaitingApproval, None, true).contains(&InDesign));
        // A grant alone moves nothing.
        let granted = CaseAccess { granted: Caps::of(&Capability::ALL), ..Default::default() };
        assert!(allowed_transitions(&granted, InDesign, None, true).is_empty());
    }

    #[test]
    fn routing_is_the_clinic_admins_and_a_doctors_own_draft() {
        assert!(may_route(&admin(), Submitted));
        assert!(may_route(&doctor(), Draft));
        assert!(!may_route(&doctor(), Submitted));
        assert!(!may_route(&admin(), Received));
        assert!(!may_route(&tech(), Draft));
    }

    #[test]
    fn at_risk_when_fewer_days_remain_than_the_stage_needs() {
        let today = time::macros::date!(2026 - 11 - 23);
        assert!(at_risk(Received, None, Some("2026-11-26"), today)); // 3 days left, needs 5
        assert!(!at_risk(InProduction, None, Some("2026-11-26"), today)); // needs 2
        assert!(at_risk(Shipped, None, Some("2026-11-22"), today)); // overdue
        assert!(!at_risk(Delivered, None, Some("2026-11-01"), today));
        assert!(!at_risk(Received, None, None, today));
        assert!(at_risk(OnHold, Some(InDesign), Some("2026-11-25"), today));
        assert_eq!(days_left(Some("2026-11-26"), today), Some(3));
        assert_eq!(days_left(Some("2026-11-22"), today), Some(-1));
        assert_eq!(days_left(None, today), None);
    }
}
