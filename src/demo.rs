//! `articula serve --demo`: a demo clinic and lab with users and cases, written through the
//! same paths as real use (cases through their actors).

use std::fmt::Write;

use anyhow::Context;
use articula_actors::case::state::CaseState;
use articula_actors::clock::{now_ms, today_utc};
use articula_actors::ports::StoredEvent;
use articula_actors::{CaseCommand, Command, Principal};
use articula_protocol::{
    CaseId, CaseStatus, EditRx, EventData, FileKind, OrgId, OrgKind, PostMessage, RequestApproval, Role,
    RxChange, SetStatus, UserId,
};
use sha2::Digest;

use crate::state::AppState;
use crate::store::users::UserStatus;

/// The demo users: e-mail, name, organisation kind, role.
pub const DEMO_USERS: &[(&str, &str, OrgKind, Role)] = &[
    ("doctor@demo.test", "Dr. Ana Ortiz", OrgKind::Clinic, Role::Doctor),
    ("doctor2@demo.test", "Dr. Ben Okafor", OrgKind::Clinic, Role::Doctor),
    ("admin@demo.test", "Carla Admin", OrgKind::Clinic, Role::ClinicAdmin),
    ("owner@demo.test", "Olga Owner", OrgKind::Clinic, Role::Owner),
    ("auditor@demo.test", "Aldo Auditor", OrgKind::Clinic, Role::Auditor),
    ("tech@demo.test", "Tomás Tech", OrgKind::Lab, Role::LabTech),
    ("labadmin@demo.test", "Lena Lab", OrgKind::Lab, Role::LabAdmin),
];

const CLINIC: &str = "Demo Clinic";
const LAB: &str = "Demo Lab";
/// A vendor's support account: in an organisation of its own, it sees a clinic's case only
/// while an owner of that clinic gives it support access.
const SUPPORT_ORG: &str = "Demo Support";
pub const DEMO_SUPPORT: (&str, &str) = ("support@demo.test", "Sam Support");

async fn org(app: &AppState, name: &str, kind: OrgKind) -> anyhow::Result<OrgId> {
    if let Some(o) = app.db.find_org(name).await? {
        return Ok(o.id);
    }
    Ok(app.db.create_org(name, kind, now_ms()).await?.id)
}

/// Seeds the demo (idempotently; the password is reset to the configured or a new random one)
/// and returns the text to print.
pub async fn seed(app: &AppState) -> anyhow::Result<String> {
    let clinic = org(app, CLINIC, OrgKind::Clinic).await?;
    let lab = org(app, LAB, OrgKind::Lab).await?;
    let (password, generated) = match &app.settings.demo_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (hex::encode(rand::random::<[u8; 8]>()), true),
    };
    let hash = app.auth.passwords().hash(&password).await?;
    let mut ids = Vec::new();
    for (email, name, kind, role) in DEMO_USERS {
        let id = match app.db.user_by_email(email).await? {
            Some(u) => {
                app.db.set_password(u.id, &hash).await?;
                app.db.reset_failed_logins(u.id).await?;
                u.id
            }
            None => app.db.create_user(email, name, Some(&hash), UserStatus::Active, now_ms()).await?,
        };
        let org_id = if *kind == OrgKind::Clinic { clinic } else { lab };
        app.db.add_membership(id, org_id, *role, now_ms()).await?;
        ids.push(id);
    }
    let support_org = org(app, SUPPORT_ORG, OrgKind::Clinic).await?;
    let (email, name) = DEMO_SUPPORT;
    let support = match app.db.user_by_email(email).await? {
        Some(u) => {
            app.db.set_password(u.id, &hash).await?;
            app.db.reset_failed_logins(u.id).await?;
            u.id
        }
        None => app.db.create_user(email, name, Some(&hash), UserStatus::Active, now_ms()).await?,
    };
    app.db.add_membership(support, support_org, Role::Auditor, now_ms()).await?;
    let (doctor, doctor2, tech) = (ids[0], ids[1], ids[5]);
    let has_cases = !app
        .db
        .list_cases(doctor, &crate::store::cases::CaseFilter { limit: 1, ..Default::default() }, today_utc())
        .await?
        .is_empty();
    if !has_cases {
        seed_cases(app, clinic, lab, doctor, doctor2, tech).await?;
    }

    let mut out = String::new();
    if let Ok((n, plain, stored)) = app.db.storage_totals().await
        && n > 0
    {
        let saved = 100.0 * (1.0 - stored as f64 / plain as f64);
        let _ = writeln!(
            out,
            "Stored files: {n}, {:.1} KiB of content in {:.1} KiB encrypted ({saved:.0}% saved by compression)\n",
            plain as f64 / 1024.0,
            stored as f64 / 1024.0
        );
    }
    let _ = writeln!(out, "Demo sign-ins (clinic portal unless marked lab):");
    for (email, name, kind, role) in DEMO_USERS {
        let portal = if *kind == OrgKind::Lab { "lab" } else { "clinic" };
        let _ = writeln!(out, "  {email:<22} {:<13} {name:<16} portal: {portal}", role.as_str());
    }
    let _ = writeln!(
        out,
        "  {:<22} {:<13} {:<16} portal: clinic (support access: an owner gives it per case)",
        DEMO_SUPPORT.0, "auditor", DEMO_SUPPORT.1
    );
    if generated {
        let _ = writeln!(out, "Password for all: {password}   (set ARTICULA_DEMO_PASSWORD to choose it)");
    } else {
        let _ = writeln!(out, "Password for all: the value of ARTICULA_DEMO_PASSWORD");
    }
    let _ = writeln!(out, "The certificate is self-signed: your browser will ask you to accept it once.");
    Ok(out)
}

fn days_from_today(days: i64) -> String {
    (today_utc() + time::Duration::days(days)).to_string()
}

async fn new_case(
    app: &AppState,
    clinic: OrgId,
    doctor: UserId,
    label: &str,
    lab: Option<OrgId>,
    due_in_days: i64,
) -> anyhow::Result<CaseId> {
    let case_id = CaseId::new();
    let event = StoredEvent {
        case_id,
        seq: 1,
        at: now_ms(),
        actor: doctor,
        client_id: None,
        digest: None,
        ip: None,
        data: EventData::CaseCreated {
            label: label.to_owned(),
            clinic_id: clinic,
            doctor_id: doctor,
            lab_id: lab,
            due_date: Some(days_from_today(due_in_days)),
        },
    };
    let state = CaseState::from_log(std::slice::from_ref(&event)).context("case_created")?;
    app.db.create_case(&event, &state.row(), &clinic.to_string(), &doctor.to_string()).await?;
    Ok(case_id)
}

async fn run(app: &AppState, case_id: CaseId, who: Principal, body: CaseCommand) -> anyhow::Result<()> {
    app.registry
        .command(case_id, Command { who, client_id: None, body })
        .await
        .map_err(|e| anyhow::anyhow!("demo command: {e}"))?;
    Ok(())
}

fn say(case_id: CaseId, text: &str) -> CaseCommand {
    CaseCommand::PostMessage(PostMessage {
        case_id,
        text: text.to_owned(),
        attachments: Vec::new(),
        reply_to: None,
        mentions: vec![],
    })
}

fn status(case_id: CaseId, status: CaseStatus) -> CaseCommand {
    CaseCommand::SetStatus(SetStatus { case_id, status, reason: None })
}

fn rx(case_id: CaseId, fields: &[(&str, &str)]) -> CaseCommand {
    CaseCommand::EditRx(EditRx {
        case_id,
        changes: fields
            .iter()
            .map(|(f, v)| RxChange { field: (*f).to_owned(), base_version: 0, value: Some((*v).to_owned()) })
            .collect(),
    })
}

async fn seed_cases(
    app: &AppState,
    clinic: OrgId,
    lab: OrgId,
    doctor: UserId,
    doctor2: UserId,
    tech: UserId,
) -> anyhow::Result<()> {
    let dr = |u| Principal::new(u, [(clinic, Role::Doctor)]);
    let lt = Principal::new(tech, [(lab, Role::LabTech)]);

    let c1 = new_case(app, clinic, doctor, "Crown 11 — shade A2", Some(lab), 9).await?;
    run(
        app,
        c1,
        dr(doctor),
        rx(
            c1,
            &[
                ("teeth.11.restoration", "crown"),
                ("teeth.11.material", "lithium_disilicate"),
                ("teeth.11.shade", "A2"),
                ("teeth.11.margin", "chamfer"),
                ("notes", "Patient prefers a natural translucency at the incisal edge."),
            ],
        ),
    )
    .await?;
    run(app, c1, dr(doctor), status(c1, CaseStatus::Submitted)).await?;
    run(
        app,
        c1,
        dr(doctor),
        say(c1, "Scan attached tomorrow morning; please confirm you can make the 9-day date."),
    )
    .await?;
    run(app, c1, lt.clone(), status(c1, CaseStatus::Received)).await?;
    run(app, c1, lt.clone(), say(c1, "Received. The date works; design by Thursday.")).await?;
    ingest(app, doctor, c1, "prep_11_scan.stl", FileKind::Scan, &dome_stl(48, 24, 4.2, 6.5, 0.9)).await?;
    ingest(
        app,
        doctor,
        c1,
        "shade_a1-a4.png",
        FileKind::Photo,
        include_bytes!("demo_assets/shade_a1_a4.png"),
    )
    .await?;

    let c2 = new_case(app, clinic, doctor, "Bridge 34–36", Some(lab), 3).await?;
    run(
        app,
        c2,
        dr(doctor),
        rx(
            c2,
            &[
                ("teeth.34.restoration", "bridge_abutment"),
                ("teeth.35.restoration", "bridge_pontic"),
                ("teeth.36.restoration", "bridge_abutment"),
                ("teeth.34.material", "zirconia"),
                ("teeth.35.material", "zirconia"),
                ("teeth.36.material", "zirconia"),
                ("teeth.35.shade", "3M2"),
            ],
        ),
    )
    .await?;
    run(app, c2, dr(doctor), status(c2, CaseStatus::Submitted)).await?;
    run(app, c2, lt.clone(), status(c2, CaseStatus::Received)).await?;
    run(app, c2, lt.clone(), status(c2, CaseStatus::InDesign)).await?;
    run(app, c2, lt.clone(), say(c2, "Pontic space is tight; we may propose a narrower pontic.")).await?;
    let design = dome_stl(96, 48, 10.5, 5.8, 0.75);
    ingest(app, tech, c2, "bridge_34-36_design_v1.stl", FileKind::Design, &design).await?;
    let sha = hex::encode(sha2::Sha256::digest(&design));
    let request = RequestApproval {
        case_id: c2,
        file_sha256: sha,
        comment: Some("Design v1 for your approval".into()),
    };
    run(app, c2, lt.clone(), CaseCommand::RequestApproval(request)).await?;

    new_case(app, clinic, doctor, "Veneers 12–22", None, 21).await?;

    let c4 = new_case(app, clinic, doctor2, "Implant crown 46", Some(lab), 1).await?;
    run(
        app,
        c4,
        dr(doctor2),
        rx(
            c4,
            &[
                ("teeth.46.restoration", "implant_crown"),
                ("teeth.46.material", "zirconia"),
                ("teeth.46.shade", "A3"),
            ],
        ),
    )
    .await?;
    run(app, c4, dr(doctor2), status(c4, CaseStatus::Submitted)).await?;
    run(app, c4, lt.clone(), status(c4, CaseStatus::Received)).await?;
    run(app, c4, lt.clone(), status(c4, CaseStatus::InProduction)).await?;

    new_case(app, clinic, doctor2, "Inlay 26", None, 14).await?;
    Ok(())
}

async fn ingest(
    app: &AppState,
    user: UserId,
    case_id: CaseId,
    name: &str,
    kind: FileKind,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let n = crate::uploads::NewUpload {
        case_id,
        filename: name.to_owned(),
        declared_type: None,
        kind: Some(kind),
        length: bytes.len() as u64,
    };
    crate::uploads::ingest(app, user, n, bytes)
        .await
        .map_err(|e| anyhow::anyhow!("demo file {name}: {e}"))?;
    Ok(())
}

/// A binary STL of a dome (a stand-in for a crown or a prepared tooth): `segments` around,
/// `rings` up, `radius` wide and `height` high (mm), with a slightly flattened top.
fn dome_stl(segments: u32, rings: u32, radius: f32, height: f32, flatten: f32) -> Vec<u8> {
    let point = |ring: u32, seg: u32| -> [f32; 3] {
        let t = ring as f32 / rings as f32 * std::f32::consts::FRAC_PI_2;
        let a = seg as f32 / segments as f32 * std::f32::consts::TAU;
        let r = radius * t.cos();
        let z = height * t.sin().powf(flatten);
        // A little occlusal anatomy: four cusps.
        let cusp = 1.0 + 0.06 * (4.0 * a).cos() * t.sin();
        [r * cusp * a.cos(), r * cusp * a.sin() * 0.9, z]
    };
    let mut tris: Vec<[[f32; 3]; 3]> = Vec::new();
    for ring in 0..rings {
        for seg in 0..segments {
            let (p00, p01) = (point(ring, seg), point(ring, seg + 1));
            let (p10, p11) = (point(ring + 1, seg), point(ring + 1, seg + 1));
            tris.push([p00, p01, p11]);
            if ring + 1 < rings {
                tris.push([p00, p11, p10]);
            }
        }
    }
    let mut out = Vec::with_capacity(84 + 50 * tris.len());
    let mut header = b"Articula demo mesh".to_vec();
    header.resize(80, b' ');
    out.extend_from_slice(&header);
    out.extend_from_slice(&(tris.len() as u32).to_le_bytes());
    for [a, b, c] in tris {
        let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(f32::EPSILON);
        for x in [n[0] / len, n[1] / len, n[2] / len, a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2]] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
    }
    out
}
